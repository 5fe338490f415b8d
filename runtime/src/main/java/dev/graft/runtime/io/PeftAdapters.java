package dev.graft.runtime.io;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.graft.runtime.ErrorCodes;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ParameterStore;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.spec.manifest.Lora;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Saves and loads adapters in the Hugging Face PEFT layout: a folder with
 * {@code adapter_config.json} and {@code adapter_model.safetensors}.
 *
 * <p>Keys are {@code base_model.model.<site>.lora_A.weight} ({@code [r, in]}, the transpose of
 * Graft's {@code [in, r]}), {@code ….lora_B.weight} ({@code [out, r]}), and for the head
 * {@code base_model.model.classifier.weight} ({@code [num_labels, hidden]}) and
 * {@code ….bias}. Each file is replaced atomically, weights first.
 */
public final class PeftAdapters {
  public static final String CONFIG_FILE = "adapter_config.json";
  public static final String WEIGHTS_FILE = "adapter_model.safetensors";
  private static final String PREFIX = "base_model.model.";
  private static final Gson GSON = new GsonBuilder().setPrettyPrinting().serializeNulls().create();

  private PeftAdapters() {}

  /** Writes {@code adapter_config.json} and {@code adapter_model.safetensors} of the store's parameters into {@code dir}. */
  public static void save(ParameterStore store, Path dir) {
    Manifest m = store.getManifest();
    Map<String, TensorData> tensors = stateDict(store);
    JsonObject config = adapterConfig(m);
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new GraftException(ErrorCodes.IO, "cannot create " + dir + ": " + e, e);
    }
    Map<String, String> meta = new TreeMap<>();
    meta.put("format", "pt");
    meta.put("producer", "graft");
    Safetensors.write(dir.resolve(WEIGHTS_FILE), tensors, meta);
    AtomicFiles.write(dir.resolve(CONFIG_FILE), (GSON.toJson(config) + "\n").getBytes(StandardCharsets.UTF_8));
  }

  /** Reads an adapter folder, checks it against the store's manifest and sets the store's parameters. */
  public static void load(ParameterStore store, Path dir) {
    Manifest m = store.getManifest();
    Path configPath = dir.resolve(CONFIG_FILE);
    JsonObject config;
    try {
      config = JsonParser.parseString(Files.readString(configPath, StandardCharsets.UTF_8)).getAsJsonObject();
    } catch (IOException e) {
      throw new GraftException(ErrorCodes.IO, "cannot read " + configPath + ": " + e, e);
    } catch (JsonParseException | IllegalStateException e) {
      throw new FormatException(configPath.toString(), "not a JSON object: " + e.getMessage(), e);
    }
    checkConfig(configPath.toString(), config, adapterConfig(m));
    Path weightsPath = dir.resolve(WEIGHTS_FILE);
    Map<String, TensorData> tensors = Safetensors.read(weightsPath).tensors();
    Map<String, float[]> values = fromStateDict(weightsPath.toString(), m, tensors);
    values.forEach(store::setParameter);
  }

  /** The PEFT key of a parameter. */
  public static String key(Parameter p) {
    String site = p.getSite();
    return switch (p.getRole()) {
      case LORA_A -> PREFIX + site + ".lora_A.weight";
      case LORA_B -> PREFIX + site + ".lora_B.weight";
      case HEAD_WEIGHT -> PREFIX + site + ".weight";
      case HEAD_BIAS -> PREFIX + site + ".bias";
      default -> throw new FormatException(
          p.getName(), "parameter role " + p.getRole() + " has no PEFT key");
    };
  }

  /** The PEFT shape of a parameter: 2-D roles transposed. */
  static long[] peftShape(Parameter p) {
    long[] s = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
    if (p.getRole() == ParameterRole.HEAD_BIAS) {
      return s;
    }
    if (s.length != 2) {
      throw new FormatException(p.getName(), p.getRole() + " must be 2-D, manifest shape " + Arrays.toString(s));
    }
    return new long[] {s[1], s[0]};
  }

  /** The store's parameters as a PEFT state dict (float32, PEFT shapes). */
  public static Map<String, TensorData> stateDict(ParameterStore store) {
    Map<String, TensorData> out = new TreeMap<>();
    for (Parameter p : store.getManifest().getParametersList()) {
      float[] v = store.getParameter(p.getName());
      long[] shape = peftShape(p);
      float[] data = p.getRole() == ParameterRole.HEAD_BIAS ? v : transpose(v, (int) shape[1], (int) shape[0]);
      if (out.put(key(p), TensorData.ofFloats(shape, data)) != null) {
        throw new FormatException(store.getManifest().getName(), "two parameters map to PEFT key " + key(p));
      }
    }
    return out;
  }

  /** Parameter values by manifest name from a PEFT state dict, checking names and shapes. */
  static Map<String, float[]> fromStateDict(String src, Manifest m, Map<String, TensorData> tensors) {
    Map<String, float[]> out = new LinkedHashMap<>();
    Set<String> expected = new TreeSet<>();
    for (Parameter p : m.getParametersList()) {
      String k = key(p);
      expected.add(k);
      TensorData t = tensors.get(k);
      if (t == null) {
        throw new FormatException(src, "has no tensor '" + k + "' (parameter " + p.getName() + ")");
      }
      long[] shape = peftShape(p);
      if (!Arrays.equals(shape, t.shape()) || (t.dtype() != DType.F32 && t.dtype() != DType.F64)) {
        throw new TensorMismatchException(
            k, "F32" + Arrays.toString(shape), t.dtype() + Arrays.toString(t.shape()), src);
      }
      float[] v = t.toFloats();
      out.put(p.getName(), p.getRole() == ParameterRole.HEAD_BIAS ? v : transpose(v, (int) shape[0], (int) shape[1]));
    }
    Set<String> extra = new TreeSet<>(tensors.keySet());
    extra.removeAll(expected);
    if (!extra.isEmpty()) {
      throw new FormatException(
          src, "holds tensors this adapter does not have: " + extra + " (was it saved from another adapter?)");
    }
    return out;
  }

  /** Transposes a row-major [rows, cols] matrix. */
  static float[] transpose(float[] v, int rows, int cols) {
    if (v.length != rows * cols) {
      throw new IllegalArgumentException(v.length + " values for [" + rows + ", " + cols + "]");
    }
    float[] t = new float[v.length];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        t[c * rows + r] = v[r * cols + c];
      }
    }
    return t;
  }

  /** The {@code adapter_config.json} for a manifest. */
  public static JsonObject adapterConfig(Manifest m) {
    List<Lora> loras = m.getLoraList();
    JsonObject c = new JsonObject();
    c.addProperty("peft_type", "LORA");
    // A causal LM graft has no head; every pooled head (classification, regression, multi-label)
    // is a Hugging Face sequence-classification head ("classifier", num_labels = its outputs).
    c.addProperty("task_type",
        m.hasTask() && m.getTask().getLoss() == Loss.CAUSAL_LM_CROSS_ENTROPY ? "CAUSAL_LM" : "SEQ_CLS");
    c.addProperty("base_model_name_or_path", m.getHost());
    c.add("revision", JsonNull.INSTANCE);
    Lora first = loras.isEmpty() ? Lora.getDefaultInstance() : loras.get(0);
    c.addProperty("r", first.getRank());
    c.add("lora_alpha", number(first.getAlpha()));
    c.addProperty("lora_dropout", first.getDropout());
    Set<String> targets = new TreeSet<>();
    JsonObject rankPattern = new JsonObject();
    JsonObject alphaPattern = new JsonObject();
    for (Lora l : loras) {
      targets.addAll(l.getTargetModulesList());
      for (String t : l.getTargetModulesList()) {
        if (l.getRank() != first.getRank()) {
          rankPattern.addProperty(t, l.getRank());
        }
        if (l.getAlpha() != first.getAlpha()) {
          alphaPattern.add(t, number(l.getAlpha()));
        }
      }
    }
    JsonArray targetArray = new JsonArray();
    targets.forEach(targetArray::add);
    c.add("target_modules", targetArray);
    c.add("rank_pattern", rankPattern);
    c.add("alpha_pattern", alphaPattern);
    c.addProperty("bias", "none");
    c.addProperty("use_rslora", first.getRslora());
    c.addProperty("use_dora", false);
    JsonArray modulesToSave = new JsonArray();
    if (m.getParametersList().stream().anyMatch(p -> p.getRole() == ParameterRole.HEAD_WEIGHT)) {
      modulesToSave.add("classifier");
    }
    c.add("modules_to_save", modulesToSave);
    boolean sameLayers =
        !loras.isEmpty() && loras.stream().allMatch(l -> l.getLayersList().equals(first.getLayersList()));
    if (sameLayers && first.getLayersCount() > 0) {
      JsonArray layers = new JsonArray();
      first.getLayersList().forEach(layers::add);
      c.add("layers_to_transform", layers);
    } else {
      c.add("layers_to_transform", JsonNull.INSTANCE);
    }
    c.addProperty("inference_mode", true);
    c.addProperty("fan_in_fan_out", false);
    c.addProperty("init_lora_weights", true);
    return c;
  }

  private static JsonElement number(double v) {
    JsonObject holder = new JsonObject();
    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
      holder.addProperty("x", (long) v);
    } else {
      holder.addProperty("x", v);
    }
    return holder.get("x");
  }

  private static void checkConfig(String src, JsonObject given, JsonObject expected) {
    List<String> problems = new ArrayList<>();
    expectString(given, "peft_type", "LORA", problems);
    for (String key : List.of("r", "lora_alpha")) {
      double want = expected.get(key).getAsDouble();
      JsonElement got = given.get(key);
      if (got == null || !got.isJsonPrimitive() || !got.getAsJsonPrimitive().isNumber()
          || Math.abs(got.getAsDouble() - want) > 1e-9 * Math.max(1, Math.abs(want))) {
        problems.add(key + ": expected " + expected.get(key) + ", given " + got);
      }
    }
    Set<String> wantTargets = strings(expected.get("target_modules"));
    JsonElement gotTargets = given.get("target_modules");
    Set<String> got = gotTargets == null ? Set.of() : gotTargets.isJsonPrimitive()
        ? Set.of(gotTargets.getAsString()) : strings(gotTargets);
    if (!wantTargets.equals(got)) {
      problems.add("target_modules: expected " + wantTargets + ", given " + got);
    }
    JsonElement rs = given.get("use_rslora");
    boolean rslora = rs != null && rs.isJsonPrimitive() && rs.getAsBoolean();
    if (rslora != expected.get("use_rslora").getAsBoolean()) {
      problems.add("use_rslora: expected " + expected.get("use_rslora") + ", given " + rs);
    }
    JsonElement dora = given.get("use_dora");
    if (dora != null && dora.isJsonPrimitive() && dora.getAsBoolean()) {
      problems.add("use_dora: expected false, given true");
    }
    for (String key : List.of("rank_pattern", "alpha_pattern")) {
      JsonElement g = given.get(key);
      JsonElement w = expected.get(key);
      boolean gotEmpty = g == null || g.isJsonNull() || (g.isJsonObject() && g.getAsJsonObject().isEmpty());
      boolean wantEmpty = w.getAsJsonObject().isEmpty();
      if (!(gotEmpty && wantEmpty) && !w.equals(g)) {
        problems.add(key + ": expected " + w + ", given " + g);
      }
    }
    if (!problems.isEmpty()) {
      throw new FormatException(src, "does not match the adapter's manifest: " + String.join("; ", problems));
    }
  }

  private static void expectString(JsonObject o, String key, String want, List<String> problems) {
    JsonElement e = o.get(key);
    if (e == null || !e.isJsonPrimitive() || !want.equals(e.getAsString())) {
      problems.add(key + ": expected \"" + want + "\", given " + e);
    }
  }

  private static Set<String> strings(JsonElement e) {
    Set<String> out = new TreeSet<>();
    if (e != null && e.isJsonArray()) {
      for (JsonElement x : e.getAsJsonArray()) {
        out.add(x.getAsString());
      }
    }
    return out;
  }
}
