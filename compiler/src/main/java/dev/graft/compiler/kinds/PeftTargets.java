package dev.graft.compiler.kinds;

import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;
import java.util.TreeSet;

/**
 * PEFT configs of the LoRA family: LoRA's ({@link #lora}), LyCORIS' ({@link #lycoris}: LoKr,
 * LoHa), and the {@code target_modules} of those written for LoKr, LoHa, VeRA and IA³: the full
 * module paths of the sites taken ({@code encoder.layer.0.attention.self.query}), sorted. PEFT
 * matches a listed name exactly or as a dotted suffix, so a short name such as {@code dense}
 * would also take {@code attention.output.dense} and {@code intermediate.dense}; full paths take
 * exactly the sites Graft adapted, layer filter included ({@code layers_to_transform} stays null).
 */
public final class PeftTargets {
  private PeftTargets() {}

  /** Adds the sites' module paths to the config's list {@code key} (created when absent), kept sorted. */
  public static void add(JsonObject config, String key, List<? extends Site> sites) {
    TreeSet<String> paths = new TreeSet<>();
    if (config.has(key)) {
      config.getAsJsonArray(key).forEach(e -> paths.add(e.getAsString()));
    }
    sites.forEach(s -> paths.add(s.modulePath()));
    JsonArray sorted = new JsonArray();
    paths.forEach(sorted::add);
    config.add(key, sorted);
  }

  /**
   * Merges a LyCORIS-family declaration (LoKr, LoHa) into PEFT's config: the first sets {@code r},
   * {@code alpha} and the fields of {@code fixed}; a later one must have the same {@code fixed}
   * values (else false: PEFT sets them once) and records another rank or alpha per site in {@code
   * rank_pattern}/{@code alpha_pattern}.
   */
  public static boolean lycoris(JsonObject c, int rank, double alpha, JsonObject fixed, List<? extends Site> sites) {
    if (!c.has("r")) {
      c.addProperty("r", rank);
      c.add("alpha", number(alpha));
      c.addProperty("rank_dropout", 0.0);
      c.addProperty("module_dropout", 0.0);
      c.addProperty("use_effective_conv2d", false);
      fixed.entrySet().forEach(e -> c.add(e.getKey(), e.getValue()));
      c.add("target_modules", new JsonArray());
      c.addProperty("init_weights", true);
      c.add("layers_to_transform", com.google.gson.JsonNull.INSTANCE);
      c.add("layers_pattern", com.google.gson.JsonNull.INSTANCE);
      c.add("rank_pattern", new JsonObject());
      c.add("alpha_pattern", new JsonObject());
    } else {
      for (var e : fixed.entrySet()) {
        JsonElement had = c.get(e.getKey());
        if (had == null || !had.equals(e.getValue())) {
          return false;
        }
      }
    }
    for (Site s : sites) {
      if (rank != c.get("r").getAsInt()) {
        c.getAsJsonObject("rank_pattern").addProperty(s.modulePath(), rank);
      }
      if (alpha != c.get("alpha").getAsDouble()) {
        c.getAsJsonObject("alpha_pattern").add(s.modulePath(), number(alpha));
      }
    }
    add(c, "target_modules", sites);
    return true;
  }

  /**
   * Merges a LoRA-family declaration into PEFT's LoRA config: the first sets {@code r}, {@code
   * lora_alpha}, dropout, rsLoRA and the layers; later ones of another rank or alpha go into
   * {@code rank_pattern}/{@code alpha_pattern}. False when the declarations differ in what PEFT
   * sets once (dropout, rsLoRA, DoRA, layers).
   */
  public static boolean lora(AdapterSpec spec, List<? extends Site> sites, JsonObject c, boolean dora) {
    return lora(spec, sites, c, dora, new JsonPrimitive(true));
  }

  /**
   * {@link #lora(AdapterSpec, List, JsonObject, boolean)} with PEFT's {@code
   * init_lora_weights} ({@code true}, or {@code "pissa"}), which PEFT also sets once.
   */
  public static boolean lora(
      AdapterSpec spec, List<? extends Site> sites, JsonObject c, boolean dora, JsonPrimitive initLoraWeights) {
    int rank = spec.intOption("rank");
    double alpha = spec.doubleOption("alpha");
    JsonArray layers = new JsonArray();
    spec.layers().forEach(layers::add);
    if (!c.has("r")) {
      c.addProperty("r", rank);
      c.add("lora_alpha", number(alpha));
      c.addProperty("lora_dropout", spec.doubleOption("dropout"));
      c.add("target_modules", new JsonArray());
      c.add("rank_pattern", new JsonObject());
      c.add("alpha_pattern", new JsonObject());
      c.addProperty("bias", "none");
      c.addProperty("use_rslora", spec.boolOption("rslora"));
      c.addProperty("use_dora", dora);
      c.add("layers_to_transform", spec.layers().isEmpty() ? JsonNull.INSTANCE : layers);
      c.addProperty("fan_in_fan_out", false);
      c.add("init_lora_weights", initLoraWeights);
    } else if (c.get("lora_dropout").getAsDouble() != spec.doubleOption("dropout")
        || c.get("use_rslora").getAsBoolean() != spec.boolOption("rslora")
        || c.get("use_dora").getAsBoolean() != dora
        || !c.get("init_lora_weights").equals(initLoraWeights)
        || !c.get("layers_to_transform").equals(spec.layers().isEmpty() ? JsonNull.INSTANCE : layers)) {
      return false;
    }
    TreeSet<String> targets = new TreeSet<>();
    c.getAsJsonArray("target_modules").forEach(e -> targets.add(e.getAsString()));
    for (Site s : sites) {
      if (!targets.add(s.moduleName())) {
        continue;
      }
      if (rank != c.get("r").getAsInt()) {
        c.getAsJsonObject("rank_pattern").addProperty(s.moduleName(), rank);
      }
      if (alpha != c.get("lora_alpha").getAsDouble()) {
        c.getAsJsonObject("alpha_pattern").add(s.moduleName(), number(alpha));
      }
    }
    JsonArray sorted = new JsonArray();
    targets.forEach(sorted::add);
    c.add("target_modules", sorted);
    return true;
  }

  /** A JSON number, written as an integer when it is one ({@code 16}, not {@code 16.0}). */
  public static JsonPrimitive number(double v) {
    return v == Math.rint(v) && Math.abs(v) < 1e15 ? new JsonPrimitive((long) v) : new JsonPrimitive(v);
  }
}
