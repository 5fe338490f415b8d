package dev.graft.dsl;

import com.google.gson.JsonElement;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.PeftConfigs;
import dev.graft.runtime.io.PeftLayout;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * The declaration a PEFT adapter folder implies on a host ({@link Graft#fromPeft}): its kind and
 * options from {@code adapter_config.json}, its sites the host's linear layers its {@code
 * target_modules} take (PEFT's rules, layers and exclusions included, in the layout the file's
 * keys are in), one declaration per distinct rank and alpha of {@code rank_pattern}/{@code
 * alpha_pattern}, and a classification head where {@code modules_to_save} names {@code
 * classifier} and the file holds its weight ({@code [labels, hidden]}). A decoder's {@code score}
 * head (its weight in the file) is refused: no Graft task pools the last non-padding token.
 */
final class PeftDeclaration {
  private static final String HEAD = PeftLayout.ROOT + "classifier.weight";
  private static final String SCORE = PeftLayout.ROOT + "score.weight";

  /** Entries whose value Graft's kinds cannot take, with the values they can. */
  private static final Map<String, List<JsonElement>> FIXED = Map.ofEntries(
      Map.entry("bias", List.of(new JsonPrimitive("none"))),
      Map.entry("fan_in_fan_out", List.of(new JsonPrimitive(false))),
      Map.entry("lora_bias", List.of(new JsonPrimitive(false))),
      Map.entry("use_qalora", List.of(new JsonPrimitive(false))),
      Map.entry("use_bdlora", List.of(JsonNull.INSTANCE, new JsonPrimitive(false))),
      Map.entry("layer_replication", List.of(JsonNull.INSTANCE)),
      Map.entry("alora_invocation_tokens", List.of(JsonNull.INSTANCE)),
      Map.entry("trainable_token_indices", List.of(JsonNull.INSTANCE)),
      Map.entry("megatron_config", List.of(JsonNull.INSTANCE)),
      Map.entry("arrow_config", List.of(JsonNull.INSTANCE)),
      Map.entry("use_effective_conv2d", List.of(new JsonPrimitive(false))));

  private PeftDeclaration() {}

  static Graft declare(HostModel host, Path folder) {
    JsonObject c = PeftAdapters.readConfig(folder);
    Map<String, TensorData> tensors = Safetensors.read(folder.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
    String src = folder.toString();
    String type = text(c, "peft_type");
    for (Map.Entry<String, List<JsonElement>> e : FIXED.entrySet()) {
      JsonElement v = c.get(e.getKey());
      if (v != null && e.getValue().stream().noneMatch(v::equals)) {
        throw unsupported(src, e.getKey(), v, "Graft's adapters have no such option (supported: " + e.getValue() + ")");
      }
    }
    JsonElement targetParameters = c.get("target_parameters");
    if (targetParameters != null && !targetParameters.isJsonNull()
        && !(targetParameters.isJsonArray() && targetParameters.getAsJsonArray().isEmpty())) {
      throw unsupported(src, "target_parameters", targetParameters, "Graft adapts linear layers, not parameters");
    }

    List<LinearSite> sites = LinearSite.find(GraftCompiler.imported(host));
    PeftLayout layout = layout(sites, tensors.keySet());
    Map<String, LinearSite> byModule = new LinkedHashMap<>();
    sites.forEach(s -> byModule.putIfAbsent(layout.prefix() + s.modulePath(), s));
    Set<String> taken = PeftConfigs.resolve(src, c, byModule.keySet());
    if (taken.isEmpty()) {
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.PEFT_TARGETS_UNMATCHED, src, "target_modules",
          src, c.get("target_modules"), host.name(), byModule.keySet().stream().limit(4).toList())));
    }

    Graft g = Graft.host(host);
    switch (type) {
      case "LORA" -> {
        JsonElement init = c.has("init_lora_weights") ? c.get("init_lora_weights") : new JsonPrimitive(true);
        String graftInit;
        if (init.equals(new JsonPrimitive("pissa"))) {
          graftInit = "pissa";
        } else if (init.isJsonPrimitive() && (init.getAsJsonPrimitive().isBoolean() || init.getAsString().equals("gaussian"))) {
          graftInit = "default";
        } else {
          throw unsupported(src, "init_lora_weights", init, "it changes the host's weights; Graft has PiSSA's (\"pissa\") only");
        }
        boolean rslora = bool(c, "use_rslora");
        boolean dora = bool(c, "use_dora");
        double dropout = number(c, "lora_dropout", 0);
        grouped(src, c, taken, "r", "lora_alpha", 8, 8).forEach((ra, modules) -> g.lora(nodes(modules, byModule), o -> {
          o.rank(ra.rank()).alpha(ra.alpha()).dropout(dropout).rslora(rslora).dora(dora).init(graftInit);
        }));
      }
      case "LOHA" -> grouped(src, c, taken, "r", "alpha", 8, 8).forEach((ra, modules) ->
          g.loha(nodes(modules, byModule), o -> o.rank(ra.rank()).alpha(ra.alpha())));
      case "LOKR" -> {
        boolean both = bool(c, "decompose_both");
        int factor = (int) number(c, "decompose_factor", -1);
        grouped(src, c, taken, "r", "alpha", 8, 8).forEach((ra, modules) ->
            g.lokr(nodes(modules, byModule), o -> o.rank(ra.rank()).alpha(ra.alpha()).factor(factor).decomposeBoth(both)));
      }
      case "IA3" -> {
        Set<String> feedforward = PeftConfigs.matching(src, "feedforward_modules",
            c.has("feedforward_modules") ? c.get("feedforward_modules") : JsonNull.INSTANCE, taken);
        // A selector that matches no node name when there is no feed-forward site.
        String ff = feedforward.isEmpty() ? "(?!)" : nodes(feedforward, byModule);
        g.ia3(nodes(taken, byModule), o -> o.feedforward(ff));
      }
      case "VERA" -> {
        if (c.has("save_projection") && !bool(c, "save_projection")) {
          throw unsupported(src, "save_projection", c.get("save_projection"),
              "the shared projections are not in the file, and Graft does not regenerate PEFT's from projection_prng_key");
        }
        int rank = (int) number(c, "r", 256);
        double dInitial = number(c, "d_initial", 0.1);
        double dropout = number(c, "vera_dropout", 0);
        g.vera(nodes(taken, byModule), o -> o.rank(rank).dInitial(dInitial).dropout(dropout));
      }
      default -> throw unsupported(src, "peft_type", c.get("peft_type"),
          "Graft reads PEFT's LORA (with use_dora, use_rslora), IA3, LOHA, LOKR and VERA folders");
    }
    TensorData head = tensors.get(HEAD);
    Set<String> toSave = new TreeSet<>();
    JsonElement mts = c.get("modules_to_save");
    if (mts != null && mts.isJsonArray()) {
      mts.getAsJsonArray().forEach(e -> toSave.add(e.isJsonPrimitive() ? e.getAsString() : e.toString()));
    }
    if (head != null && toSave.contains("classifier")) {
      long[] shape = head.shape();
      if (shape.length != 2 || shape[0] < 1 || shape[0] > Integer.MAX_VALUE) {
        throw unsupported(src, HEAD, new JsonPrimitive(head.toString()), "a classification head's weight is [labels, hidden]");
      }
      g.classification((int) shape[0]);
    }
    if (tensors.containsKey(SCORE) && toSave.contains("score")) {
      throw unsupported(src, "modules_to_save", mts, "the file holds " + SCORE + ", the head of a decoder's sequence"
          + " classification (transformers' *ForSequenceClassification: the last non-padding token, no bias); Graft's"
          + " pooled heads take the first token or the mean and have a bias, and its causal LM task has no head");
    }
    return g;
  }

  /** The layout whose module paths the file's keys use (bare when none is recognized). */
  private static PeftLayout layout(List<LinearSite> sites, Set<String> keys) {
    for (PeftLayout l : PeftLayout.values()) {
      for (LinearSite s : sites) {
        String k = PeftLayout.ROOT + l.prefix() + s.modulePath() + ".";
        if (keys.stream().anyMatch(x -> x.startsWith(k))) {
          return l;
        }
      }
    }
    return PeftLayout.BARE;
  }

  private record RankAlpha(int rank, double alpha) {}

  /** The taken modules by their rank and alpha (PEFT's base values and patterns), in module order. */
  private static Map<RankAlpha, Set<String>> grouped(String src, JsonObject c, Set<String> taken, String rankKey,
      String alphaKey, int defaultRank, double defaultAlpha) {
    JsonObject ranks = object(src, c, "rank_pattern");
    JsonObject alphas = object(src, c, "alpha_pattern");
    JsonElement r = c.has(rankKey) ? c.get(rankKey) : new JsonPrimitive(defaultRank);
    JsonElement a = c.has(alphaKey) ? c.get(alphaKey) : new JsonPrimitive(defaultAlpha);
    Map<RankAlpha, Set<String>> out = new LinkedHashMap<>();
    for (String m : taken) {
      JsonElement rank = PeftConfigs.pattern(src, "rank_pattern", ranks, m, r);
      JsonElement alpha = PeftConfigs.pattern(src, "alpha_pattern", alphas, m, a);
      if (!isNumber(rank) || rank.getAsDouble() != Math.rint(rank.getAsDouble()) || rank.getAsDouble() < 1
          || rank.getAsDouble() > Integer.MAX_VALUE) {
        throw unsupported(src, rankKey, rank, "a rank is a positive integer");
      }
      if (!isNumber(alpha)) {
        throw unsupported(src, alphaKey, alpha, "alpha is a number");
      }
      out.computeIfAbsent(new RankAlpha(rank.getAsInt(), alpha.getAsDouble()), k -> new TreeSet<>()).add(m);
    }
    return out;
  }

  /** A selector taking exactly the node names of {@code modules}. */
  private static String nodes(Set<String> modules, Map<String, LinearSite> byModule) {
    List<String> names = new ArrayList<>();
    for (String m : modules) {
      names.add(Pattern.quote(byModule.get(m).node()));
    }
    return String.join("|", names);
  }

  private static JsonObject object(String src, JsonObject c, String key) {
    JsonElement e = c.get(key);
    if (e == null || e.isJsonNull()) {
      return new JsonObject();
    }
    if (!e.isJsonObject()) {
      throw unsupported(src, key, e, "expected an object of module patterns");
    }
    return e.getAsJsonObject();
  }

  private static boolean isNumber(JsonElement e) {
    return e.isJsonPrimitive() && e.getAsJsonPrimitive().isNumber();
  }

  private static String text(JsonObject c, String key) {
    JsonElement e = c.get(key);
    return e != null && e.isJsonPrimitive() && e.getAsJsonPrimitive().isString() ? e.getAsString() : String.valueOf(e);
  }

  private static boolean bool(JsonObject c, String key) {
    JsonElement e = c.get(key);
    if (e == null || e.isJsonNull()) {
      return false;
    }
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isBoolean()) {
      throw unsupported("adapter_config.json", key, e, "expected true or false");
    }
    return e.getAsBoolean();
  }

  private static double number(JsonObject c, String key, double otherwise) {
    JsonElement e = c.get(key);
    if (e == null || e.isJsonNull()) {
      return otherwise;
    }
    if (!isNumber(e)) {
      throw unsupported("adapter_config.json", key, e, "expected a number");
    }
    return e.getAsDouble();
  }

  private static GraftCompileException unsupported(String src, String key, JsonElement value, String why) {
    return new GraftCompileException(List.of(Diagnostic.of(ErrorCode.PEFT_CONFIG_UNSUPPORTED, src, key, src, key, value, why)));
  }
}
