package dev.graft.runtime.io;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * Saves and loads adapters in the Hugging Face PEFT layout: a folder with
 * {@code adapter_config.json} and {@code adapter_model.safetensors}.
 *
 * <p>The compiler decides both for every kind: each parameter's manifest entry names its key
 * ({@code save_key}, e.g. {@code base_model.model.<site>.lora_A.weight}), its saved shape and
 * whether it is saved transposed (PEFT's {@code [out, in]} against Graft's {@code [in, out]}); the
 * manifest's {@code adapter_config} is the config, PEFT's where PEFT has the kinds used and
 * Graft's otherwise. Parameters without a key (recomputed from the host) are not saved. A save
 * replaces the folder as a whole ({@link AtomicFiles#writeFolder}); a load reads and checks both
 * files (strict JSON, names, shapes, finite values) before it sets anything.
 *
 * <p>A load reads folders as PEFT writes them: the config compared by meaning ({@link
 * PeftConfigs}), the keys in any {@link PeftLayout} (found from the file's keys unless one is
 * given), BF16 and F16 tensors widened to float32 exactly. What it ignores or converts is returned
 * as notes and logged as warnings (logger {@code dev.graft.runtime.io.PeftAdapters}).
 */
public final class PeftAdapters {
  public static final String CONFIG_FILE = "adapter_config.json";
  public static final String WEIGHTS_FILE = "adapter_model.safetensors";
  /** Configs longer than this are refused before they are read. */
  static final long MAX_CONFIG_BYTES = 16L * 1024 * 1024;
  private static final System.Logger LOG = System.getLogger(PeftAdapters.class.getName());

  private PeftAdapters() {}

  /** Writes {@code adapter_config.json} and {@code adapter_model.safetensors} of the store's parameters into {@code dir}. */
  public static void save(ParameterStore store, Path dir) {
    save(store, dir, PeftLayout.BARE);
  }

  /**
   * {@link #save(ParameterStore, Path)} with the keys and the config's module paths in {@code
   * layout} (e.g. {@link PeftLayout#BERT} for a {@code BertForSequenceClassification}).
   */
  public static void save(ParameterStore store, Path dir, PeftLayout layout) {
    Manifest m = store.getManifest();
    write(dir, stateDict(store, layout), inLayout(adapterConfig(m), m, layout));
  }

  /**
   * Writes an adapter folder of the given state dict (PEFT keys and saved shapes) and {@code
   * adapter_config.json} text, replaced as a whole: what a merge result saves.
   */
  public static void save(Path dir, Map<String, TensorData> tensors, String config) {
    write(dir, new TreeMap<>(tensors), config);
  }

  /** A config with its full module paths ({@code target_modules}, {@code feedforward_modules}) in {@code layout}. */
  private static String inLayout(String config, Manifest m, PeftLayout layout) {
    if (layout == PeftLayout.BARE) {
      return config;
    }
    JsonObject c = JsonParser.parseString(config).getAsJsonObject();
    Set<String> modules = modules(m, PeftLayout.BARE);
    for (String key : List.of("target_modules", "feedforward_modules")) {
      if (c.has(key) && c.get(key).isJsonArray()) {
        JsonArray out = new JsonArray();
        for (JsonElement e : c.getAsJsonArray(key)) {
          String name = e.getAsString();
          out.add(modules.contains(name) ? layout.module(name) : name);
        }
        c.add(key, out);
      }
    }
    return new GsonBuilder().setPrettyPrinting().serializeNulls().disableHtmlEscaping().create()
        .toJson(c) + "\n";
  }

  /**
   * The module paths (in {@code layout}) of the sites of adapter {@code index} (1-based; 0: of
   * every adapter); null when the manifest records none.
   */
  private static @Nullable Set<String> adapted(Manifest m, PeftLayout layout, int index) {
    Set<String> out = new TreeSet<>();
    for (int i = 0; i < m.getAdaptersCount(); i++) {
      if (index == 0 || index == i + 1) {
        m.getAdapters(i).getSitesList().forEach(x -> out.add(layout.module(x)));
      }
    }
    return out.isEmpty() ? null : out;
  }

  /**
   * The module paths a config's {@code target_modules} resolves against, in {@code layout}: the
   * host's linear modules (from the manifest), the adapters' sites and those of the parameters.
   */
  static Set<String> modules(Manifest m, PeftLayout layout) {
    Set<String> out = new TreeSet<>();
    m.getLinearModulesList().forEach(x -> out.add(layout.module(x)));
    m.getAdaptersList().forEach(a -> a.getSitesList().forEach(x -> out.add(layout.module(x))));
    for (Parameter p : m.getParametersList()) {
      if (!p.getSite().isEmpty() && p.getRole() != ParameterRole.HEAD_WEIGHT
          && p.getRole() != ParameterRole.HEAD_BIAS) {
        out.add(layout.module(p.getSite()));
      }
    }
    return out;
  }

  /**
   * Writes an adapter folder as a whole (see {@link AtomicFiles#writeFolder}): a sibling temporary
   * folder with both files is forced to disk and swapped in, so a reader (or a save killed at any
   * point) sees the previous folder or the complete new one.
   */
  static void write(Path dir, Map<String, TensorData> tensors, String config) {
    Map<String, String> meta = new TreeMap<>();
    meta.put("format", "pt");
    meta.put("producer", "graft");
    byte[] weights = Safetensors.toBytes(tensors, meta);
    byte[] json = config.getBytes(StandardCharsets.UTF_8);
    Map<String, AtomicFiles.Writer> files = new LinkedHashMap<>();
    files.put(WEIGHTS_FILE, out -> out.write(weights));
    files.put(CONFIG_FILE, out -> out.write(json));
    AtomicFiles.writeFolder(dir, files);
  }

  /** The {@code adapter_config.json} of adapter folder {@code dir} as a JSON object (bounded, strict JSON). */
  public static JsonObject readConfig(Path dir) {
    return readConfigFile(AtomicFiles.readable(dir).resolve(CONFIG_FILE));
  }

  private static JsonObject readConfigFile(Path configPath) {
    String text;
    try {
      if (Files.size(configPath) > MAX_CONFIG_BYTES) {
        throw new FormatException(configPath.toString(), "is larger than " + MAX_CONFIG_BYTES + " bytes");
      }
      text = Files.readString(configPath, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + configPath + ": " + e, e);
    }
    return StrictJson.parseObject(configPath.toString(), text);
  }

  /**
   * Reads an adapter folder (Graft's or PEFT's, in any {@link PeftLayout}), checks it against the
   * store's manifest and sets the store's parameters; returns the notes on what was ignored or
   * converted (also logged as warnings).
   */
  public static List<String> load(ParameterStore store, Path dir) {
    return load(store, dir, null);
  }

  /** {@link #load(ParameterStore, Path)} with the keys' layout given ({@code null}: found from the file's keys). */
  public static List<String> load(ParameterStore store, Path dir, @Nullable PeftLayout layout) {
    Manifest m = store.getManifest();
    dir = AtomicFiles.readable(dir);
    Path configPath = dir.resolve(CONFIG_FILE);
    JsonObject config = readConfigFile(configPath);
    Path weightsPath = dir.resolve(WEIGHTS_FILE);
    Map<String, TensorData> tensors = Safetensors.read(weightsPath).tensors();
    List<Parameter> saved = m.getParametersList().stream().filter(p -> !p.getSaveKey().isEmpty()).toList();
    PeftLayout l = layout(weightsPath.toString(), m, saved, tensors.keySet(), layout);
    List<String> notes = new ArrayList<>();
    PeftConfigs.check(configPath.toString(), config, JsonParser.parseString(adapterConfig(m)).getAsJsonObject(),
        modules(m, l), adapted(m, l, 0), notes);
    Map<String, float[]> values = fromStateDict(weightsPath.toString(), m, tensors, l, notes);
    values.forEach(store::setParameter);
    return logged(notes);
  }

  private static List<String> logged(List<String> notes) {
    notes.forEach(n -> LOG.log(System.Logger.Level.WARNING, n));
    return Collections.unmodifiableList(notes);
  }

  /**
   * The layout of a file's keys: the one whose key of the first saved module parameter the file
   * holds ({@link PeftLayout#BARE} when none does: the missing keys are then reported by name);
   * when {@code given} is another, a {@code GRAFT-R040} error naming both.
   */
  private static PeftLayout layout(String src, Manifest m, List<Parameter> saved, Set<String> keys,
      @Nullable PeftLayout given) {
    Parameter probe = PeftLayout.probe(saved);
    if (probe == null) {
      return given == null ? PeftLayout.BARE : given;
    }
    PeftLayout found = null;
    for (PeftLayout l : PeftLayout.values()) {
      if (keys.contains(wholeKey(m, probe, l))) {
        found = l;
        break;
      }
    }
    if (given == null) {
      return found == null ? PeftLayout.BARE : found;
    }
    if (found != null && found != given) {
      throw new GraftException(RuntimeErrorCode.PEFT_LAYOUT, src + ": layout " + given + " was asked for (key '"
          + wholeKey(m, probe, given) + "'), but the file's keys are in layout " + found + " ('"
          + wholeKey(m, probe, found) + "')");
    }
    return given;
  }

  /** The saved key of a parameter. */
  public static String key(Parameter p) {
    return p.getSaveKey();
  }

  /** The saved shape of a parameter. */
  static long[] savedShape(Parameter p) {
    long[] s = p.getSaveShapeList().stream().mapToLong(Long::longValue).toArray();
    long n = 1;
    for (long d : s) {
      n *= d;
    }
    long want = p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b);
    if (n != want || (p.getSaveTransposed() && p.getShapeCount() != 2)) {
      throw new FormatException(p.getName(), "saved shape " + Arrays.toString(s) + " does not fit shape "
          + p.getShapeList() + (p.getSaveTransposed() ? " transposed" : ""));
    }
    return s;
  }

  /** The store's saved parameters as a state dict (float32, saved shapes and keys). */
  public static Map<String, TensorData> stateDict(ParameterStore store) {
    return stateDict(store, PeftLayout.BARE);
  }

  /** The store's saved parameters as a state dict, keys in {@code layout}. */
  public static Map<String, TensorData> stateDict(ParameterStore store, PeftLayout layout) {
    Map<String, TensorData> out = new TreeMap<>();
    for (Parameter p : store.getManifest().getParametersList()) {
      if (p.getSaveKey().isEmpty()) {
        continue;
      }
      float[] v = store.getParameter(p.getName());
      float[] data = p.getSaveTransposed() ? transpose(v, (int) p.getShape(0), (int) p.getShape(1)) : v;
      if (out.put(wholeKey(store.getManifest(), p, layout), TensorData.ofFloats(savedShape(p), data)) != null) {
        throw new FormatException(store.getManifest().getName(), "two parameters are saved as " + key(p));
      }
    }
    return out;
  }

  /**
   * Parameter values by manifest name from a saved state dict (keys in {@code layout}), checking
   * names and shapes; BF16 and F16 tensors are widened to float32 (exactly), with a note naming them.
   */
  static Map<String, float[]> fromStateDict(String src, Manifest m, Map<String, TensorData> tensors, PeftLayout layout,
      List<String> notes) {
    Map<String, float[]> out = new LinkedHashMap<>();
    Set<String> expected = new TreeSet<>();
    Map<DType, List<String>> converted = new TreeMap<>();
    for (Parameter p : m.getParametersList()) {
      if (p.getSaveKey().isEmpty()) {
        continue;
      }
      String k = wholeKey(m, p, layout);
      expected.add(k);
      TensorData t = tensors.get(k);
      if (t == null) {
        throw new FormatException(src, "has no tensor '" + k + "' (parameter " + p.getName() + ")");
      }
      out.put(p.getName(), values(src, k, p, t, converted));
    }
    Set<String> extra = new TreeSet<>(tensors.keySet());
    extra.removeAll(expected);
    if (!extra.isEmpty()) {
      throw new FormatException(
          src, "holds tensors this adapter does not have: " + extra + " (was it saved from another adapter?)");
    }
    converted(src, converted, notes);
    return out;
  }

  /** A saved tensor's values in the parameter's layout, its shape and type checked. */
  private static float[] values(String src, String k, Parameter p, TensorData t, Map<DType, List<String>> converted) {
    long[] shape = savedShape(p);
    if (!Arrays.equals(shape, t.shape()) || !t.dtype().isFloat()) {
      throw new TensorMismatchException(k, "F32" + Arrays.toString(shape), t.dtype() + Arrays.toString(t.shape()), src);
    }
    if (t.dtype() == DType.BF16 || t.dtype() == DType.F16) {
      converted.computeIfAbsent(t.dtype(), d -> new ArrayList<>()).add(k);
    }
    float[] v = TensorData.requireFinite(src, k, t.toFloats());
    return p.getSaveTransposed() ? transpose(v, (int) shape[0], (int) shape[1]) : v;
  }

  private static void converted(String src, Map<DType, List<String>> converted, List<String> notes) {
    converted.forEach((d, keys) -> notes.add(src + ": " + keys.size() + " " + d
        + " tensors converted to float32 (exactly): " + keys));
  }

  /**
   * The key of a parameter in the whole graft's folder: its save key in the layout, prefixed with {@code
   * <name>/} for a named adapter's (two named adapters of one kind on the same layers have the
   * same PEFT keys; saved alone, each has PEFT's).
   */
  static String wholeKey(Manifest m, Parameter p, PeftLayout layout) {
    if (p.getAdapter() > 0 && p.getAdapter() <= m.getAdaptersCount()) {
      String name = m.getAdapters(p.getAdapter() - 1).getName();
      if (!name.isEmpty()) {
        return name + "/" + layout.key(p);
      }
    }
    return layout.key(p);
  }

  /** The declaration index (1-based, as {@link Parameter#getAdapter()}) of named adapter {@code name}. */
  private static int adapterIndex(Manifest m, String name) {
    List<String> names = new ArrayList<>();
    for (int i = 0; i < m.getAdaptersCount(); i++) {
      if (m.getAdapters(i).getName().equals(name)) {
        return i + 1;
      }
      if (!m.getAdapters(i).getName().isEmpty()) {
        names.add(m.getAdapters(i).getName());
      }
    }
    throw new GraftException(RuntimeErrorCode.ARGUMENT,
        "graft '" + m.getName() + "' has no adapter named '" + name + "'; its named adapters are " + names);
  }

  /**
   * Writes named adapter {@code name} alone into {@code dir}: its parameters under their save keys
   * (PEFT's where PEFT has the kind) and its own {@code adapter_config.json}.
   */
  public static void saveNamed(ParameterStore store, Path dir, String name) {
    Manifest m = store.getManifest();
    int index = adapterIndex(m, name);
    Map<String, TensorData> out = new TreeMap<>();
    for (Parameter p : m.getParametersList()) {
      if (p.getAdapter() != index || p.getSaveKey().isEmpty()) {
        continue;
      }
      float[] v = store.getParameter(p.getName());
      float[] data = p.getSaveTransposed() ? transpose(v, (int) p.getShape(0), (int) p.getShape(1)) : v;
      if (out.put(key(p), TensorData.ofFloats(savedShape(p), data)) != null) {
        throw new FormatException(m.getName(), "two parameters of adapter '" + name + "' are saved as " + key(p));
      }
    }
    write(dir, out, m.getAdapters(index - 1).getConfig());
  }

  /**
   * Reads a folder saved by {@link #saveNamed} (or PEFT, for a kind PEFT has) into named adapter
   * {@code name}: the config must match the adapter's, and the tensors its parameters' keys and
   * shapes; nothing is set unless everything matches.
   */
  public static List<String> loadNamed(ParameterStore store, Path dir, String name) {
    Manifest m = store.getManifest();
    int index = adapterIndex(m, name);
    dir = AtomicFiles.readable(dir);
    Path configPath = dir.resolve(CONFIG_FILE);
    JsonObject config = readConfigFile(configPath);
    List<String> notes = new ArrayList<>();
    PeftConfigs.check(configPath.toString(), config,
        JsonParser.parseString(m.getAdapters(index - 1).getConfig()).getAsJsonObject(), modules(m, PeftLayout.BARE),
        adapted(m, PeftLayout.BARE, index), notes);
    Path weightsPath = dir.resolve(WEIGHTS_FILE);
    Map<String, TensorData> tensors = Safetensors.read(weightsPath).tensors();
    Map<String, float[]> values = new LinkedHashMap<>();
    Set<String> expected = new TreeSet<>();
    Map<DType, List<String>> converted = new TreeMap<>();
    for (Parameter p : m.getParametersList()) {
      if (p.getAdapter() != index || p.getSaveKey().isEmpty()) {
        continue;
      }
      String k = key(p);
      expected.add(k);
      TensorData t = tensors.get(k);
      if (t == null) {
        throw new FormatException(weightsPath.toString(), "has no tensor '" + k + "' (parameter " + p.getName()
            + " of adapter '" + name + "')");
      }
      values.put(p.getName(), values(weightsPath.toString(), k, p, t, converted));
    }
    Set<String> extra = new TreeSet<>(tensors.keySet());
    extra.removeAll(expected);
    if (!extra.isEmpty()) {
      throw new FormatException(weightsPath.toString(), "holds tensors adapter '" + name + "' does not have: " + extra);
    }
    converted(weightsPath.toString(), converted, notes);
    values.forEach(store::setParameter);
    return logged(notes);
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

  /** The {@code adapter_config.json} for a manifest, as the compiler wrote it. */
  public static String adapterConfig(Manifest m) {
    if (m.getAdapterConfig().isEmpty()) {
      throw new FormatException(m.getName(), "the manifest has no adapter_config; recompile the graft");
    }
    return m.getAdapterConfig();
  }

  /** Whether two config values are equal: numbers by value, lists of names as sets, objects and lists by element. */
  static boolean same(JsonElement want, JsonElement got) {
    if (want.isJsonPrimitive() && want.getAsJsonPrimitive().isNumber()) {
      return got.isJsonPrimitive() && got.getAsJsonPrimitive().isNumber()
          && Math.abs(got.getAsDouble() - want.getAsDouble()) <= 1e-9 * Math.max(1, Math.abs(want.getAsDouble()));
    }
    if (want.isJsonArray() && got.isJsonArray() && allStrings(want.getAsJsonArray()) && allStrings(got.getAsJsonArray())) {
      return strings(want).equals(strings(got));
    }
    if (want.isJsonObject() && got.isJsonObject()) {
      JsonObject w = want.getAsJsonObject();
      JsonObject g = got.getAsJsonObject();
      if (!w.keySet().equals(g.keySet())) {
        return false;
      }
      for (String k : w.keySet()) {
        if (!same(w.get(k), g.get(k))) {
          return false;
        }
      }
      return true;
    }
    if (want.isJsonArray() && got.isJsonArray()) {
      JsonArray w = want.getAsJsonArray();
      JsonArray g = got.getAsJsonArray();
      if (w.size() != g.size()) {
        return false;
      }
      for (int i = 0; i < w.size(); i++) {
        if (!same(w.get(i), g.get(i))) {
          return false;
        }
      }
      return true;
    }
    return want.equals(got);
  }

  private static boolean allStrings(JsonArray a) {
    for (JsonElement e : a) {
      if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isString()) {
        return false;
      }
    }
    return true;
  }

  private static Set<String> strings(JsonElement e) {
    Set<String> out = new TreeSet<>();
    for (JsonElement x : e.getAsJsonArray()) {
      out.add(x.getAsString());
    }
    return out;
  }
}
