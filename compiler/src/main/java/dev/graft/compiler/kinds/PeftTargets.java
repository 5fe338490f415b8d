package dev.graft.compiler.kinds;

import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * PEFT configs of the LoRA family: LoRA's ({@link #lora}, spelled by {@link #spell}), LyCORIS'
 * ({@link #lycoris}: LoKr, LoHa), and the {@code target_modules} of those written for LoKr, LoHa,
 * VeRA and IA³: the full module paths of the sites taken ({@code
 * encoder.layer.0.attention.self.query}), sorted. PEFT matches a listed name exactly or as a
 * dotted suffix, so a short name such as {@code dense} would also take {@code
 * attention.output.dense} and {@code intermediate.dense}; a LoRA config uses short names only
 * where they take exactly the sites Graft adapted.
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
   * lora_alpha}, dropout, rsLoRA and DoRA; later ones of another rank or alpha go into {@code
   * rank_pattern}/{@code alpha_pattern}. Targets and pattern keys are full module paths until
   * {@link #spell} writes them as PEFT resolves them. False when the declarations differ in what
   * PEFT sets once (dropout, rsLoRA, DoRA, initialization).
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
      c.add("layers_to_transform", JsonNull.INSTANCE);
      c.addProperty("fan_in_fan_out", false);
      c.add("init_lora_weights", initLoraWeights);
    } else if (c.get("lora_dropout").getAsDouble() != spec.doubleOption("dropout")
        || c.get("use_rslora").getAsBoolean() != spec.boolOption("rslora")
        || c.get("use_dora").getAsBoolean() != dora
        || !c.get("init_lora_weights").equals(initLoraWeights)) {
      return false;
    }
    for (Site s : sites) {
      if (rank != c.get("r").getAsInt()) {
        c.getAsJsonObject("rank_pattern").addProperty(s.modulePath(), rank);
      }
      if (alpha != c.get("lora_alpha").getAsDouble()) {
        c.getAsJsonObject("alpha_pattern").add(s.modulePath(), number(alpha));
      }
    }
    add(c, "target_modules", sites);
    return true;
  }

  /**
   * Rewrites a LoRA config merged by {@link #lora} (full module paths in {@code target_modules},
   * {@code rank_pattern} and {@code alpha_pattern}) into the shortest spelling that PEFT resolves,
   * against {@code modules} (the host's linear modules), to exactly those paths: the short names
   * ({@code ["query","value"]}) when they take no other module; else the short names with {@code
   * layers_to_transform} when the layer filter makes them exact; else the full paths; else a
   * full-match regex of the escaped paths. Pattern keys become short names where every target of
   * that name has the value, else the escaped path.
   */
  public static void spell(JsonObject c, Collection<String> modules) {
    TreeSet<String> targets = new TreeSet<>();
    c.getAsJsonArray("target_modules").forEach(e -> targets.add(e.getAsString()));
    TreeSet<String> universe = new TreeSet<>(modules);
    universe.addAll(targets);
    TreeSet<String> shorts = new TreeSet<>();
    targets.forEach(t -> shorts.add(shortName(t)));
    TreeSet<Integer> layers = new TreeSet<>();
    boolean layered = true;
    for (String t : targets) {
      Matcher m = LAYER.matcher(t);
      if (m.matches() && m.group(1).length() <= 9) {
        layers.add(Integer.parseInt(m.group(1)));
      } else {
        layered = false;
      }
    }
    JsonElement layersToTransform = JsonNull.INSTANCE;
    if (resolve(shorts, null, universe).equals(targets)) {
      c.add("target_modules", strings(shorts));
    } else if (layered && resolve(shorts, layers, universe).equals(targets)) {
      c.add("target_modules", strings(shorts));
      JsonArray l = new JsonArray();
      layers.forEach(l::add);
      layersToTransform = l;
    } else if (resolve(targets, null, universe).equals(targets)) {
      c.add("target_modules", strings(targets));
    } else {
      c.addProperty("target_modules", "(?:" + String.join("|", targets.stream().map(PeftTargets::escaped).toList()) + ")");
    }
    c.add("layers_to_transform", layersToTransform);
    for (String[] keys : List.of(new String[] {"rank_pattern", "r"}, new String[] {"alpha_pattern", "lora_alpha"})) {
      JsonObject full = c.getAsJsonObject(keys[0]);
      JsonElement base = c.get(keys[1]);
      JsonObject spelled = new JsonObject();
      for (var e : full.entrySet()) {
        String name = shortName(e.getKey());
        boolean alike = targets.stream().filter(t -> shortName(t).equals(name))
            .allMatch(t -> full.has(t) ? full.get(t).equals(e.getValue()) : base.equals(e.getValue()));
        spelled.add(alike ? name : escaped(e.getKey()), e.getValue());
      }
      c.add(keys[0], spelled);
    }
  }

  /** PEFT's layer pattern when {@code layers_pattern} is null: the index after one of these names. */
  private static final Pattern LAYER = Pattern.compile(".*\\.(?:layers|h|block|blocks|layer)\\.(\\d+)\\..*");

  /**
   * PEFT's resolution of a list {@code target_modules}: the modules equal to an entry, or ending
   * with {@code "." + entry} and (with {@code layers}) in one of those layers.
   */
  private static Set<String> resolve(Set<String> names, @Nullable Set<Integer> layers, Set<String> modules) {
    Set<String> out = new TreeSet<>();
    for (String m : modules) {
      if (names.contains(m)) {
        out.add(m);
        continue;
      }
      if (names.stream().anyMatch(n -> m.endsWith("." + n))) {
        Matcher x = LAYER.matcher(m);
        if (layers == null || (x.matches() && x.group(1).length() <= 9 && layers.contains(Integer.parseInt(x.group(1))))) {
          out.add(m);
        }
      }
    }
    return out;
  }

  private static String shortName(String path) {
    return path.substring(path.lastIndexOf('.') + 1);
  }

  /** {@code path} as a regex (Java's and Python's) matching only itself: ASCII punctuation escaped. */
  static String escaped(String path) {
    StringBuilder b = new StringBuilder();
    for (char ch : path.toCharArray()) {
      if (ch < 128 && !Character.isLetterOrDigit(ch) && ch != '_') {
        b.append('\\');
      }
      b.append(ch);
    }
    return b.toString();
  }

  private static JsonArray strings(Set<String> names) {
    JsonArray a = new JsonArray();
    names.forEach(a::add);
    return a;
  }

  /** A JSON number, written as an integer when it is one ({@code 16}, not {@code 16.0}). */
  public static JsonPrimitive number(double v) {
    return v == Math.rint(v) && Math.abs(v) < 1e15 ? new JsonPrimitive((long) v) : new JsonPrimitive(v);
  }
}
