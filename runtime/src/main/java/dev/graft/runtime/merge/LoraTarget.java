package dev.graft.runtime.merge;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.PeftConfigs;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * A merge result as the parameters of a LoRA graft (the target): per site, the re-factored
 * {@code A·B} divided by the target's scaling there ({@code lora_alpha / r}, or {@code / √r} with
 * {@code use_rslora}, per {@code rank_pattern} and {@code alpha_pattern}), zero-padded to the
 * target's rank; the head as merged. The target's config, read from its manifest, is PEFT's, so
 * the same values saved are a PEFT LoRA folder whose scaling PEFT applies once.
 */
final class LoraTarget {
  private LoraTarget() {}

  /** The target's parameter values (Graft's layout, by parameter name) that make its update the result's. */
  static Map<String, float[]> values(MergeResult result, Manifest target) {
    String src = "target graft '" + target.getName() + "'";
    JsonObject config = config(target);
    if (!"LORA".equals(string(config, "peft_type")) || bool(config, "use_dora")) {
      throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + ": expected a plain LoRA graft (peft_type LORA,"
          + " no DoRA) to hold a merge result, given peft_type " + string(config, "peft_type")
          + (bool(config, "use_dora") ? " with use_dora" : ""));
    }
    JsonObject rankPattern = object(config, "rank_pattern");
    JsonObject alphaPattern = object(config, "alpha_pattern");
    boolean rslora = bool(config, "use_rslora");
    Map<String, float[]> values = new LinkedHashMap<>();
    SortedMap<String, Parameter[]> factors = new TreeMap<>();
    for (Parameter p : target.getParametersList()) {
      switch (p.getRole()) {
        case LORA_A, LORA_B -> {
          Parameter[] pair = factors.computeIfAbsent(p.getSite(), k -> new Parameter[2]);
          int at = p.getRole() == ParameterRole.LORA_A ? 0 : 1;
          if (pair[at] != null) {
            throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + ": expected one LoRA per site, given two at "
                + p.getSite() + " (" + pair[at].getName() + ", " + p.getName() + ")");
          }
          pair[at] = p;
        }
        case HEAD_WEIGHT, HEAD_BIAS -> values.put(p.getName(), head(result, p, src));
        default -> throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + ": expected only LoRA factors and the"
            + " head, given parameter " + p.getName() + " (" + p.getRole() + ")");
      }
    }
    for (String site : result.sites().keySet()) {
      if (!factors.containsKey(site)) {
        throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + " has no LoRA at merged site " + site
            + " (its LoRA sites: " + factors.keySet() + ")");
      }
    }
    for (var e : factors.entrySet()) {
      String site = e.getKey();
      Parameter pa = e.getValue()[0];
      Parameter pb = e.getValue()[1];
      if (pa == null || pb == null || pa.getShapeCount() != 2 || pb.getShapeCount() != 2) {
        throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + ": site " + site
            + " has no pair of 2-D lora_A, lora_B parameters");
      }
      int in = (int) pa.getShape(0);
      int rank = (int) pa.getShape(1);
      int out = (int) pb.getShape(1);
      double r = PeftConfigs.pattern(src, "rank_pattern", rankPattern, site, config.get("r")).getAsDouble();
      double alpha = PeftConfigs.pattern(src, "alpha_pattern", alphaPattern, site, config.get("lora_alpha"))
          .getAsDouble();
      double scaling = alpha / (rslora ? Math.sqrt(r) : r);
      float[] a = new float[in * rank];
      float[] b = new float[rank * out];
      SiteDelta d = result.sites().get(site);
      if (d != null) {
        if (d.in() != in || d.out() != out) {
          throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + ": site " + site + " is [" + in + ", " + out
              + "], the merged update [" + d.in() + ", " + d.out() + "]");
        }
        if (d.changesBias()) {
          throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "site " + site + ": the merged update changes the"
              + " bias, which a LoRA (bias \"none\") cannot hold; export it as a merged model instead");
        }
        if (!d.isFactored() || d.rank() > rank) {
          throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "site " + site + ": expected factors of rank at"
              + " most the target's " + rank + ", given " + (d.isFactored() ? "rank " + d.rank() : "a dense ΔW")
              + "; re-factor the result with toRank(" + rank + ") first");
        }
        double[] da = d.aView();
        double[] db = d.bView();
        int k = d.rank();
        for (int i = 0; i < in; i++) {
          for (int j = 0; j < k; j++) {
            a[i * rank + j] = (float) (da[i * k + j] / scaling);
          }
        }
        for (int j = 0; j < k; j++) {
          for (int c = 0; c < out; c++) {
            b[j * out + c] = (float) db[j * out + c];
          }
        }
      }
      values.put(pa.getName(), a);
      values.put(pb.getName(), b);
    }
    return values;
  }

  /** The target's adapter_config.json with the result's provenance under {@code graft_merge}. */
  static String config(MergeResult result, Manifest target) {
    JsonObject c = config(target);
    c.add("graft_merge", result.provenance());
    return new GsonBuilder().setPrettyPrinting().serializeNulls().disableHtmlEscaping().create().toJson(c) + "\n";
  }

  static float[] head(MergeResult result, Parameter p, String src) {
    HeadTensor t = result.head().get(p.getSaveKey());
    long[] saved = p.getSaveShapeList().stream().mapToLong(Long::longValue).toArray();
    if (t == null || !Arrays.equals(saved, t.shape())) {
      throw new GraftException(RuntimeErrorCode.MERGE_TARGET, src + ": expected a merged head tensor "
          + p.getSaveKey() + " " + Arrays.toString(saved) + ", given " + (t == null ? "none (the merged head has "
              + result.head().keySet() + ")" : Arrays.toString(t.shape())));
    }
    double[] v = t.values();
    float[] f = new float[v.length];
    if (p.getSaveTransposed()) {
      int rows = (int) saved[0];
      int cols = (int) saved[1];
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < cols; j++) {
          f[j * rows + i] = (float) v[i * cols + j];
        }
      }
    } else {
      for (int i = 0; i < v.length; i++) {
        f[i] = (float) v[i];
      }
    }
    return f;
  }

  private static JsonObject config(Manifest target) {
    return JsonParser.parseString(PeftAdapters.adapterConfig(target)).getAsJsonObject();
  }

  private static String string(JsonObject c, String key) {
    JsonElement e = c.get(key);
    return e == null || !e.isJsonPrimitive() ? String.valueOf(e) : e.getAsString();
  }

  private static boolean bool(JsonObject c, String key) {
    JsonElement e = c.get(key);
    return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isBoolean() && e.getAsBoolean();
  }

  private static JsonObject object(JsonObject c, String key) {
    JsonElement e = c.get(key);
    return e != null && e.isJsonObject() ? e.getAsJsonObject() : new JsonObject();
  }

  static boolean isHead(Parameter p) {
    return p.getRole() == ParameterRole.HEAD_WEIGHT || p.getRole() == ParameterRole.HEAD_BIAS;
  }
}
