package dev.graft.compiler.kinds;

import dev.graft.compiler.kinds.lora.LoraKind;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import java.util.List;
import java.util.TreeSet;

/**
 * The {@code target_modules} of PEFT configs written for LoKr, LoHa, VeRA and IA³: the full
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
      c.add("alpha", LoraKind.number(alpha));
      c.addProperty("rank_dropout", 0.0);
      c.addProperty("module_dropout", 0.0);
      c.addProperty("use_effective_conv2d", false);
      fixed.entrySet().forEach(e -> c.add(e.getKey(), e.getValue()));
      c.add("target_modules", new JsonArray());
      c.add("exclude_modules", com.google.gson.JsonNull.INSTANCE);
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
        c.getAsJsonObject("alpha_pattern").add(s.modulePath(), LoraKind.number(alpha));
      }
    }
    add(c, "target_modules", sites);
    return true;
  }
}
