package dev.graft.runtime.io;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.runtime.FormatException;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.jspecify.annotations.Nullable;

/**
 * Compares an {@code adapter_config.json} as PEFT writes it with the one the compiler wrote for
 * the graft, by what the entries mean rather than how they are spelled: {@code target_modules}
 * (short names, full module paths or a regex string), {@code feedforward_modules} and {@code
 * exclude_modules} are resolved against the host's linear modules with PEFT's rules and compared
 * as module sets; {@code r}, {@code lora_alpha}/{@code alpha} and their patterns as the rank and
 * alpha of each module; {@code modules_to_save} as a set that may name modules the graft does
 * not have (ignored, with a note); {@code task_type} may be null. Entries the graft's config does
 * not have are ignored unless they are known to change the adapter's function at a value other
 * than their neutral one (e.g. {@code lora_bias: true}); unknown ones are named in a note.
 */
public final class PeftConfigs {
  /** Entries that describe where an adapter was saved, not what it is; not compared. */
  private static final Set<String> INFORMATIONAL = Set.of("base_model_name_or_path", "revision", "inference_mode",
      "graft_merge");

  /** Entries consumed by the module resolution, not compared by themselves. */
  private static final Set<String> RESOLUTION = Set.of(
      "target_modules", "exclude_modules", "layers_to_transform", "layers_pattern", "feedforward_modules",
      "r", "lora_alpha", "alpha", "rank_pattern", "alpha_pattern", "modules_to_save", "task_type");

  /** Dropout rates: they act only while training; a difference is a note (the graft's rate is kept). */
  private static final Set<String> DROPOUT = Set.of("lora_dropout", "rank_dropout", "module_dropout");

  /**
   * Entries a Graft config does not write whose value changes the adapter's function unless it is
   * one of the neutral values listed (PEFT's defaults).
   */
  private static final Map<String, List<JsonElement>> NEUTRAL = Map.ofEntries(
      Map.entry("bias", List.of(new JsonPrimitive("none"))),
      Map.entry("fan_in_fan_out", List.of(new JsonPrimitive(false))),
      Map.entry("use_dora", List.of(new JsonPrimitive(false))),
      Map.entry("use_rslora", List.of(new JsonPrimitive(false))),
      Map.entry("lora_bias", List.of(new JsonPrimitive(false))),
      Map.entry("use_qalora", List.of(new JsonPrimitive(false))),
      Map.entry("use_bdlora", List.of(JsonNull.INSTANCE, new JsonPrimitive(false))),
      Map.entry("use_effective_conv2d", List.of(new JsonPrimitive(false))),
      Map.entry("layer_replication", List.of(JsonNull.INSTANCE)),
      Map.entry("alora_invocation_tokens", List.of(JsonNull.INSTANCE)),
      Map.entry("trainable_token_indices", List.of(JsonNull.INSTANCE)),
      Map.entry("target_parameters", List.of(JsonNull.INSTANCE, new JsonArray())),
      Map.entry("megatron_config", List.of(JsonNull.INSTANCE)),
      Map.entry("arrow_config", List.of(JsonNull.INSTANCE)),
      Map.entry("decompose_both", List.of(new JsonPrimitive(false))),
      Map.entry("decompose_factor", List.of(new JsonPrimitive(-1))));

  /**
   * Entries of newer PEFT versions known not to change a loaded adapter's function (versions,
   * class hints, initialization methods — the weights are read, not initialized).
   */
  private static final Set<String> HARMLESS = Set.of(
      "peft_version", "auto_mapping", "megatron_core", "qalora_group_size", "ensure_weight_tying", "loftq_config",
      "eva_config", "corda_config", "lora_ga_config", "init_weights", "init_ia3_weights", "init_lora_weights",
      "save_projection", "projection_prng_key", "d_initial", "vera_dropout");

  /** PEFT's default {@code layers_pattern}: the layer index in a module path. */
  private static final Pattern LAYER = Pattern.compile(".*\\.(?:layers|h|block|blocks|layer)\\.(\\d+)\\..*");

  /** Longest regex a config may hold (PEFT's are a few dozen characters). */
  static final int MAX_PATTERN_CHARS = 4096;
  /** Characters one match of a config's regex may read before the config is refused (a hostile pattern backtracks without end). */
  static final long MAX_MATCH_STEPS = 1_000_000L;

  private PeftConfigs() {}

  /** A config's regex, compiled; too long or invalid is an error naming the entry. */
  private static Pattern compile(String src, String key, String regex) {
    if (regex.length() > MAX_PATTERN_CHARS) {
      throw new FormatException(src, key + ": a regular expression of " + regex.length() + " characters; the limit is "
          + MAX_PATTERN_CHARS);
    }
    try {
      return Pattern.compile(regex);
    } catch (PatternSyntaxException e) {
      throw new FormatException(src, key + ": " + regex + " is not a valid regular expression: " + e.getDescription());
    }
  }

  /** Whether {@code p} matches all of {@code text}, reading at most {@link #MAX_MATCH_STEPS} characters. */
  private static boolean matches(String src, String key, Pattern p, String text) {
    try {
      return p.matcher(new Bounded(text, new long[] {MAX_MATCH_STEPS})).matches();
    } catch (Bounded.Exhausted e) {
      throw new FormatException(src, key + ": regular expression " + p.pattern() + " takes more than " + MAX_MATCH_STEPS
          + " steps to match '" + text + "'; refused");
    }
  }

  /** A string whose characters may be read a bounded number of times (a matcher's backtracking reads them). */
  private record Bounded(String text, long[] budget) implements CharSequence {
    static final class Exhausted extends RuntimeException {
      private static final long serialVersionUID = 1L;

      Exhausted() {
        super(null, null, false, false);
      }
    }

    @Override
    public char charAt(int index) {
      if (--budget[0] < 0) {
        throw new Exhausted();
      }
      return text.charAt(index);
    }

    @Override
    public int length() {
      return text.length();
    }

    @Override
    public CharSequence subSequence(int start, int end) {
      return new Bounded(text.substring(start, end), budget);
    }

    @Override
    public String toString() {
      return text;
    }
  }

  /**
   * Checks {@code given} against {@code expected}; {@code modules} are the module paths a PEFT
   * {@code target_modules} resolves against (the host's linear modules, in the file's layout),
   * {@code adapted} the modules the graft's adapters are on ({@code null}: those {@code expected}
   * resolves to). Differences that change the function are one {@link FormatException} naming
   * each entry, what was expected and what was given; what is ignored goes into {@code notes}.
   */
  static void check(String src, JsonObject given, JsonObject expected, Set<String> modules,
      @Nullable Set<String> adapted, List<String> notes) {
    List<String> problems = new ArrayList<>();
    // PEFT's own config (not Graft's "GRAFT" one): compared as PEFT reads it.
    boolean peft = expected.has("peft_type") && !expected.get("peft_type").equals(new JsonPrimitive("GRAFT"));
    for (Map.Entry<String, JsonElement> e : expected.entrySet()) {
      String k = e.getKey();
      if (INFORMATIONAL.contains(k) || (peft && RESOLUTION.contains(k))) {
        continue;
      }
      JsonElement got = orNull(given.get(k));
      if (given.get(k) == null && NEUTRAL.getOrDefault(k, List.of()).stream().anyMatch(n -> PeftAdapters.same(n, e.getValue()))) {
        // An older PEFT's config without the entry: PEFT's default, the graft's value.
        continue;
      }
      if (DROPOUT.contains(k)) {
        if (!PeftAdapters.same(e.getValue(), got) && !got.isJsonNull()) {
          notes.add(src + ": " + k + " is " + got + " in the file, " + e.getValue()
              + " in the graft; dropout acts only while training, the graft's rate is kept");
        }
        continue;
      }
      if (!PeftAdapters.same(e.getValue(), got)) {
        problems.add(k + ": expected " + e.getValue() + ", given " + given.get(k));
      }
    }
    if (peft) {
      taskType(given, expected, problems);
      modulesToSave(src, given, expected, notes, problems);
    }
    if (peft && expected.has("target_modules")) {
      Set<String> want = adapted == null ? resolve(src, expected, modules) : adapted;
      Set<String> have = resolve(src, given, modules);
      if (!want.equals(have)) {
        problems.add("target_modules: expected " + expected.get("target_modules") + ", given " + given.get("target_modules")
            + differences(want, have));
      } else {
        patterns(src, given, expected, want, problems);
        if (expected.has("feedforward_modules")) {
          Set<String> ffWant = matching(src, "feedforward_modules", expected.get("feedforward_modules"), want);
          Set<String> ffHave = PeftAdapters.same(expected.get("feedforward_modules"), orNull(given.get("feedforward_modules")))
              ? ffWant : matching(src, "feedforward_modules", orNull(given.get("feedforward_modules")), want);
          if (!ffWant.equals(ffHave)) {
            problems.add("feedforward_modules: expected " + expected.get("feedforward_modules") + ", given "
                + given.get("feedforward_modules") + differences(ffWant, ffHave));
          }
        }
      }
    }
    List<String> unknown = new ArrayList<>();
    for (Map.Entry<String, JsonElement> e : new TreeSet<>(given.keySet()).stream()
        .map(k -> Map.entry(k, given.get(k))).toList()) {
      String k = e.getKey();
      if (expected.has(k) || INFORMATIONAL.contains(k) || RESOLUTION.contains(k) || HARMLESS.contains(k)
          || DROPOUT.contains(k) || k.equals("peft_type")) {
        continue;
      }
      List<JsonElement> neutral = NEUTRAL.get(k);
      if (neutral == null) {
        unknown.add(k);
      } else if (neutral.stream().noneMatch(n -> PeftAdapters.same(n, e.getValue()))) {
        problems.add(k + ": expected " + neutral.get(0) + " (Graft's adapter has no such option), given " + e.getValue());
      }
    }
    if (!unknown.isEmpty()) {
      notes.add(src + ": ignored config entries this version of Graft does not know: " + unknown);
    }
    if (!problems.isEmpty()) {
      throw new FormatException(src, "does not match the adapter's manifest: " + String.join("; ", problems));
    }
  }

  static JsonElement orNull(@Nullable JsonElement e) {
    return e == null ? JsonNull.INSTANCE : e;
  }

  private static void taskType(JsonObject given, JsonObject expected, List<String> problems) {
    JsonElement want = orNull(expected.get("task_type"));
    JsonElement got = orNull(given.get("task_type"));
    if (!got.isJsonNull() && !want.isJsonNull() && !want.equals(got)) {
      problems.add("task_type: expected " + want + " (or null), given " + got);
    }
  }

  private static void modulesToSave(String src, JsonObject given, JsonObject expected, List<String> notes,
      List<String> problems) {
    Set<String> want = strings(src, "modules_to_save", orNull(expected.get("modules_to_save")));
    Set<String> got = strings(src, "modules_to_save", orNull(given.get("modules_to_save")));
    Set<String> missing = new TreeSet<>(want);
    missing.removeAll(got);
    if (!missing.isEmpty()) {
      problems.add("modules_to_save: expected " + expected.get("modules_to_save") + ", given "
          + given.get("modules_to_save") + " (missing " + missing + ")");
    }
    Set<String> extra = new TreeSet<>(got);
    extra.removeAll(want);
    if (!extra.isEmpty()) {
      notes.add(src + ": modules_to_save names modules this graft does not have, ignored: " + extra);
    }
  }

  /** The names of a list of strings (null: none); anything else is an error naming the entry. */
  private static Set<String> strings(String src, String key, JsonElement e) {
    Set<String> out = new LinkedHashSet<>();
    if (e.isJsonNull()) {
      return out;
    }
    if (!e.isJsonArray()) {
      throw new FormatException(src, key + ": expected a list of names, given " + e);
    }
    for (JsonElement x : e.getAsJsonArray()) {
      if (!x.isJsonPrimitive() || !x.getAsJsonPrimitive().isString()) {
        throw new FormatException(src, key + ": expected a list of names, given " + e);
      }
      out.add(x.getAsString());
    }
    return out;
  }

  /**
   * The modules a config adapts, with PEFT's rules: {@code target_modules} as a string is a regex
   * matched in full, as a list names modules equal to or ending with {@code "." + entry}; {@code
   * exclude_modules} the same way; {@code layers_to_transform} keeps the modules of those layer
   * indices ({@code layers_pattern}: the name before the index, default PEFT's list).
   */
  public static Set<String> resolve(String src, JsonObject config, Set<String> modules) {
    Set<String> out = matching(src, "target_modules", orNull(config.get("target_modules")), modules);
    out.removeAll(matching(src, "exclude_modules", orNull(config.get("exclude_modules")), modules));
    JsonElement layers = orNull(config.get("layers_to_transform"));
    if (!layers.isJsonNull()) {
      Set<Integer> keep = new TreeSet<>();
      if (layers.isJsonPrimitive() && layers.getAsJsonPrimitive().isNumber()) {
        keep.add(layerIndex(src, layers, layers));
      } else if (layers.isJsonArray()) {
        for (JsonElement x : layers.getAsJsonArray()) {
          keep.add(layerIndex(src, x, layers));
        }
      } else {
        throw new FormatException(src, "layers_to_transform: expected layer indices, given " + layers);
      }
      Pattern layer = layerPattern(src, orNull(config.get("layers_pattern")));
      out.removeIf(m -> {
        Matcher x = layer.matcher(m);
        return !x.matches() || x.group(1).length() > 9 || !keep.contains(Integer.parseInt(x.group(1)));
      });
    }
    return out;
  }

  private static int layerIndex(String src, JsonElement x, JsonElement layers) {
    if (!x.isJsonPrimitive() || !x.getAsJsonPrimitive().isNumber() || x.getAsDouble() != Math.rint(x.getAsDouble())
        || x.getAsDouble() < 0 || x.getAsDouble() > Integer.MAX_VALUE) {
      throw new FormatException(src, "layers_to_transform: expected layer indices, given " + layers);
    }
    return (int) x.getAsDouble();
  }

  private static Pattern layerPattern(String src, JsonElement pattern) {
    if (pattern.isJsonNull()) {
      return LAYER;
    }
    Set<String> names = pattern.isJsonPrimitive() ? Set.of(pattern.getAsString()) : strings(src, "layers_pattern", pattern);
    return Pattern.compile(".*\\.(?:" + String.join("|", names.stream().map(Pattern::quote).toList()) + ")\\.(\\d+)\\..*");
  }

  /** The modules {@code selector} (a regex string matched in full, or a list of names or dotted suffixes) takes. */
  public static Set<String> matching(String src, String key, JsonElement selector, Set<String> modules) {
    Set<String> out = new TreeSet<>();
    if (selector.isJsonNull()) {
      return out;
    }
    if (selector.isJsonPrimitive() && selector.getAsJsonPrimitive().isString()) {
      Pattern p = compile(src, key, selector.getAsString());
      modules.stream().filter(m -> matches(src, key, p, m)).forEach(out::add);
      return out;
    }
    Set<String> names = strings(src, key, selector);
    for (String m : modules) {
      for (String n : names) {
        if (m.equals(n) || m.endsWith("." + n)) {
          out.add(m);
          break;
        }
      }
    }
    return out;
  }

  private static String differences(Set<String> want, Set<String> have) {
    Set<String> onlyFile = new TreeSet<>(have);
    onlyFile.removeAll(want);
    Set<String> onlyGraft = new TreeSet<>(want);
    onlyGraft.removeAll(have);
    return " (resolved against the host's linear modules: only the file adapts " + onlyFile
        + ", only the graft adapts " + onlyGraft + ")";
  }

  /** Compares the rank and alpha of every adapted module (PEFT's {@code r}/{@code rank_pattern}, alpha likewise). */
  private static void patterns(String src, JsonObject given, JsonObject expected, Set<String> modules,
      List<String> problems) {
    for (String[] keys : List.of(new String[] {"r", "rank_pattern"}, new String[] {"lora_alpha", "alpha_pattern"},
        new String[] {"alpha", "alpha_pattern"})) {
      String base = keys[0];
      if (!expected.has(base)) {
        continue;
      }
      JsonElement wantBase = expected.get(base);
      JsonElement gotBase = orNull(given.get(base));
      JsonObject wantPattern = object(src, keys[1], orNull(expected.get(keys[1])));
      JsonObject gotPattern = object(src, keys[1], orNull(given.get(keys[1])));
      if (wantPattern.size() == 0 && gotPattern.size() == 0) {
        if (!PeftAdapters.same(wantBase, gotBase)) {
          problems.add(base + ": expected " + wantBase + ", given " + given.get(base));
        }
        continue;
      }
      List<String> differ = new ArrayList<>();
      for (String m : modules) {
        JsonElement w = pattern(src, keys[1], wantPattern, m, wantBase);
        JsonElement g = pattern(src, keys[1], gotPattern, m, gotBase);
        if (!PeftAdapters.same(w, g)) {
          differ.add(m + " expected " + w + ", given " + g);
        }
      }
      if (!differ.isEmpty()) {
        problems.add(base + "/" + keys[1] + ": expected " + wantBase + " " + wantPattern + ", given " + given.get(base)
            + " " + given.get(keys[1]) + " (" + String.join(", ", differ.subList(0, Math.min(3, differ.size())))
            + (differ.size() > 3 ? ", … " + differ.size() + " modules" : "") + ")");
      }
    }
  }

  private static JsonObject object(String src, String key, JsonElement e) {
    if (e.isJsonNull()) {
      return new JsonObject();
    }
    if (!e.isJsonObject()) {
      throw new FormatException(src, key + ": expected an object of module patterns, given " + e);
    }
    return e.getAsJsonObject();
  }

  /** PEFT's pattern lookup: the first key {@code k} with {@code (.*\.)?(k)$} matching the module, else the base value. */
  public static JsonElement pattern(String src, String key, JsonObject patterns, String module, JsonElement base) {
    for (Map.Entry<String, JsonElement> e : patterns.entrySet()) {
      compile(src, key, e.getKey());
      if (matches(src, key, compile(src, key, "(.*\\.)?(" + e.getKey() + ")"), module)) {
        return e.getValue();
      }
    }
    return base;
  }
}
