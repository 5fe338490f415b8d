package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.dsl.Graft;
import dev.graft.runtime.io.DType;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.PeftLayout;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.MiniLmHost;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The adapter folders real PEFT 0.19.1 wrote (test resources {@code peft-samples/}, see its
 * README) on the real all-MiniLM-L6-v2: each loads into a graft declared by hand and into the one
 * {@link Graft#fromPeft} infers, and reproduces PEFT's logits for the same token ids within 1e-4;
 * Graft's saves go through PEFT's rewrites (duplicated {@code modules_to_save}, BF16/F16 tensors,
 * the {@code bert.} layout, other spellings of {@code target_modules}) and load back.
 */
class PeftSamplesTest {
  private static final double TOLERANCE = 1e-4;
  private static Path samples;
  private static Map<String, long[][]> inputs;

  @BeforeAll
  static void readInputs() throws IOException, URISyntaxException {
    samples = Path.of(PeftSamplesTest.class.getClassLoader().getResource("peft-samples/inputs.json").toURI()).getParent();
    JsonObject o = JsonParser.parseString(Files.readString(samples.resolve("inputs.json"))).getAsJsonObject();
    inputs = new LinkedHashMap<>();
    for (String name : List.of("input_ids", "attention_mask", "token_type_ids")) {
      JsonArray rows = o.getAsJsonArray(name);
      long[][] v = new long[rows.size()][];
      for (int i = 0; i < v.length; i++) {
        JsonArray r = rows.get(i).getAsJsonArray();
        v[i] = new long[r.size()];
        for (int j = 0; j < v[i].length; j++) {
          v[i][j] = r.get(j).getAsLong();
        }
      }
      inputs.put(name, v);
    }
    assertEquals(20, inputs.get("input_ids").length);
  }

  /** The graft each sample's README row describes, declared by hand. */
  private static Graft byHand(String sample) {
    Graft g = Graft.host(MiniLmHost.get());
    UnaryOperator<Graft> adapter = switch (sample) {
      case "lora-task-type-null", "lora-seq-cls" -> x -> x.lora(".*/(query|value)/MatMul", l -> l.rank(8).alpha(16));
      case "dora" -> x -> x.lora(".*/(query|value)/MatMul", l -> l.rank(8).alpha(16).dora(true));
      case "ia3" -> x -> x.ia3("");
      case "loha" -> x -> x.loha(".*/(query|value)/MatMul", l -> l.rank(8).alpha(8));
      default -> throw new IllegalArgumentException(sample);
    };
    return adapter.apply(g).classification(2);
  }

  private static float[][] peftLogits(String sample) throws IOException {
    JsonArray rows = JsonParser.parseString(Files.readString(samples.resolve(sample).resolve("peft_logits.json")))
        .getAsJsonObject().getAsJsonArray("logits");
    float[][] out = new float[rows.size()][];
    for (int i = 0; i < out.length; i++) {
      JsonArray r = rows.get(i).getAsJsonArray();
      out[i] = new float[] {r.get(0).getAsFloat(), r.get(1).getAsFloat()};
    }
    return out;
  }

  private static double maxAbs(float[][] a, float[][] b) {
    assertEquals(a.length, b.length);
    double max = 0;
    for (int i = 0; i < a.length; i++) {
      assertEquals(a[i].length, b[i].length);
      for (int j = 0; j < a[i].length; j++) {
        max = Math.max(max, Math.abs(a[i][j] - b[i][j]));
      }
    }
    return max;
  }

  private static AdapterModel open(Graft g) {
    return g.open(ModelOptions.defaults());
  }

  @ParameterizedTest
  @ValueSource(strings = {"lora-task-type-null", "lora-seq-cls", "dora", "ia3", "loha"})
  void everySampleReproducesPeftsLogitsInAGraftDeclaredByHand(String sample) throws IOException {
    float[][] want = peftLogits(sample);
    try (AdapterModel model = open(byHand(sample))) {
      double before = maxAbs(want, model.predict(inputs));
      List<String> notes = model.loadAdapter(samples.resolve(sample));
      double after = maxAbs(want, model.predict(inputs));
      assertTrue(before > 0.1, sample + ": the adapter moves the logits visibly (" + before + " before loading)");
      System.out.printf("%s (declared by hand): max |graft - peft| = %.2e%n", sample, after);
      assertTrue(after <= TOLERANCE, sample + ": max |graft - peft| = " + after);
      boolean seqCls = !sample.equals("lora-task-type-null");
      assertEquals(seqCls, notes.stream().anyMatch(n -> n.contains("modules_to_save") && n.contains("[score]")),
          "PEFT's sequence-classification wrapper adds 'score', which is ignored with a note: " + notes);
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"lora-task-type-null", "lora-seq-cls", "dora", "ia3", "loha"})
  void everySampleReproducesPeftsLogitsInTheInferredDeclaration(String sample) throws IOException {
    Graft inferred = Graft.fromPeft(MiniLmHost.get(), samples.resolve(sample));
    Manifest m = inferred.compile().manifest();
    Manifest hand = byHand(sample).compile().manifest();
    assertEquals(hand.getAdapters(0).getKind(), m.getAdapters(0).getKind(), sample);
    assertEquals(hand.getAdapters(0).getSitesList(), m.getAdapters(0).getSitesList(), sample + ": the same modules");
    Map<String, String> options = new TreeMap<>(m.getAdapters(0).getOptionsMap());
    Map<String, String> handOptions = new TreeMap<>(hand.getAdapters(0).getOptionsMap());
    // IA³'s feed-forward selector is written as the node names PEFT's feedforward_modules take.
    options.remove("feedforward");
    handOptions.remove("feedforward");
    assertEquals(handOptions, options, sample + ": the same options");
    assertEquals(2, m.getHead().getNumLabels(), sample + ": the head from modules_to_save and classifier.weight");
    try (AdapterModel model = open(inferred)) {
      model.loadAdapter(samples.resolve(sample));
      double after = maxAbs(peftLogits(sample), model.predict(inputs));
      System.out.printf("%s (inferred): max |graft - peft| = %.2e%n", sample, after);
      assertTrue(after <= TOLERANCE, sample + ": max |graft - peft| = " + after);
    }
  }

  private static JsonObject config(Path dir) throws IOException {
    return JsonParser.parseString(Files.readString(dir.resolve(PeftAdapters.CONFIG_FILE))).getAsJsonObject();
  }

  private static void writeConfig(Path dir, JsonObject c) throws IOException {
    Files.writeString(dir.resolve(PeftAdapters.CONFIG_FILE), c.toString(), StandardCharsets.UTF_8);
  }

  /** A copy of {@code from} in {@code to} with each tensor through {@code tensor} and keys through {@code key}. */
  private static void copy(Path from, Path to, UnaryOperator<String> key, UnaryOperator<TensorData> tensor) throws IOException {
    Files.createDirectories(to);
    Files.copy(from.resolve(PeftAdapters.CONFIG_FILE), to.resolve(PeftAdapters.CONFIG_FILE));
    Map<String, TensorData> out = new TreeMap<>();
    Safetensors.read(from.resolve(PeftAdapters.WEIGHTS_FILE)).tensors().forEach((k, t) -> out.put(key.apply(k), tensor.apply(t)));
    Safetensors.write(to.resolve(PeftAdapters.WEIGHTS_FILE), out, Map.of("format", "pt"));
  }

  @Test
  void aGraftAdapterResavedAsPeftDoesLoadsBackToIdenticalLogits(@TempDir Path dir) throws IOException {
    Path saved = dir.resolve("saved");
    float[][] trained;
    try (AdapterModel model = open(byHand("ia3"))) {
      model.loadAdapter(samples.resolve("ia3"));
      trained = model.predict(inputs);
      model.saveAdapter(saved);
    }
    JsonObject c = config(saved);
    assertFalse(c.has("exclude_modules"), "PEFT before 0.14 refuses exclude_modules: null");
    assertTrue(c.get("base_model_name_or_path").isJsonNull(), "left for the user to set: " + c);
    // What one trip through PEFT (get_peft_model with task_type SEQ_CLS, save_pretrained) writes.
    JsonArray modules = new JsonArray();
    List.of("classifier", "classifier", "score").forEach(modules::add);
    c.add("modules_to_save", modules);
    c.addProperty("task_type", "SEQ_CLS");
    c.addProperty("peft_version", "0.19.1");
    c.addProperty("base_model_name_or_path", "");
    writeConfig(saved, c);
    try (AdapterModel fresh = open(byHand("ia3"))) {
      fresh.loadAdapter(saved);
      float[][] back = fresh.predict(inputs);
      for (int i = 0; i < trained.length; i++) {
        assertArrayEquals(trained[i], back[i], 0f, "row " + i);
      }
    }
  }

  /** Round to nearest even to bfloat16, as torch's {@code .to(torch.bfloat16)}. */
  static short toBf16(float f) {
    int bits = Float.floatToRawIntBits(f);
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }

  /** Round to nearest even to IEEE half (normal range; the samples' values are small). */
  static short toF16(float f) {
    int bits = Float.floatToRawIntBits(f);
    int sign = (bits >>> 16) & 0x8000;
    float a = Math.abs(f);
    if (a < 0x1p-14f) {
      // Subnormal: a multiple of 2^-24, rounded to nearest even by rint.
      return (short) (sign | (int) Math.rint(a * 0x1p24f));
    }
    int abs = bits & 0x7fffffff;
    int rounded = abs + 0xfff + ((abs >>> 13) & 1);
    int exp = (rounded >>> 23) - 127 + 15;
    assertTrue(exp < 31, "in half's range: " + f);
    return (short) (sign | (exp << 10) | ((rounded >>> 13) & 0x3ff));
  }

  private static UnaryOperator<TensorData> narrowed(DType type) {
    return t -> {
      float[] v = t.toFloats();
      ByteBuffer b = ByteBuffer.allocate(v.length * 2).order(ByteOrder.LITTLE_ENDIAN);
      for (float x : v) {
        b.putShort(type == DType.BF16 ? toBf16(x) : toF16(x));
      }
      return new TensorData(type, t.shape(), b.array());
    };
  }

  @ParameterizedTest
  @ValueSource(strings = {"BF16", "F16"})
  void aHalfPrecisionCopyLoadsExactlyWidenedWithANoteNamingTheTensors(String type, @TempDir Path dir) throws IOException {
    DType d = DType.valueOf(type);
    Path half = dir.resolve("half");
    copy(samples.resolve("lora-seq-cls"), half, k -> k, narrowed(d));
    Map<String, TensorData> original = Safetensors.read(samples.resolve("lora-seq-cls").resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
    try (AdapterModel model = open(byHand("lora-seq-cls"))) {
      List<String> notes = model.loadAdapter(half);
      String note = notes.stream().filter(n -> n.contains(type + " tensors converted")).findFirst().orElseThrow(
          () -> new AssertionError("a note on the conversion: " + notes));
      assertTrue(note.contains("26 " + type) && note.contains("base_model.model.classifier.weight")
          && note.contains("base_model.model.encoder.layer.5.attention.self.value.lora_B.weight"), note);
      // Exactly the rounded values: the head's weight ([2, 384] saved, [384, 2] in Graft).
      float[] saved = original.get("base_model.model.classifier.weight").toFloats();
      float[] loaded = model.getParameter("classifier.weight");
      for (int o = 0; o < 2; o++) {
        for (int i = 0; i < 384; i++) {
          float x = saved[o * 384 + i];
          float rounded = d == DType.BF16 ? Float.intBitsToFloat((toBf16(x) & 0xffff) << 16) : halfValue(toF16(x));
          assertEquals(rounded, loaded[i * 2 + o], 0f, "classifier.weight[" + o + "][" + i + "]");
        }
      }
      double diff = maxAbs(peftLogits("lora-seq-cls"), model.predict(inputs));
      System.out.printf("lora-seq-cls as %s: max |graft - peft| = %.2e%n", type, diff);
      // bf16 keeps 8 significant bits (relative error ≤ 2^-9 per value), half 11.
      assertTrue(diff <= (d == DType.BF16 ? 0.05 : 0.005) && diff > 0, type + ": max |graft - peft| = " + diff);
    }
  }

  private static float halfValue(short h) {
    int exp = (h >>> 10) & 0x1f;
    int mant = h & 0x3ff;
    float v = exp == 0 ? mant * 0x1p-24f : (float) ((1 + mant / 1024.0) * Math.pow(2, exp - 15));
    return (h & 0x8000) != 0 ? -v : v;
  }

  private static String bert(String key) {
    return key.startsWith("base_model.model.encoder.") ? key.replace("base_model.model.", "base_model.model.bert.") : key;
  }

  @Test
  void aBertPrefixedCopyLoadsAndAnExplicitLayoutIsChecked(@TempDir Path dir) throws IOException {
    Path prefixed = dir.resolve("bert");
    copy(samples.resolve("loha"), prefixed, PeftSamplesTest::bert, t -> t);
    // BertForSequenceClassification's full module paths are under bert. too.
    JsonObject c = config(prefixed);
    JsonArray targets = new JsonArray();
    c.getAsJsonArray("target_modules").forEach(e -> targets.add("bert." + e.getAsString()));
    c.add("target_modules", targets);
    writeConfig(prefixed, c);
    float[][] want = peftLogits("loha");
    try (AdapterModel model = open(byHand("loha"))) {
      model.loadAdapter(prefixed);
      assertTrue(maxAbs(want, model.predict(inputs)) <= TOLERANCE);
      GraftException wrong = assertThrows(GraftException.class, () -> model.loadAdapter(prefixed, PeftLayout.BARE));
      assertEquals(RuntimeErrorCode.PEFT_LAYOUT, wrong.getErrorCode());
      assertTrue(wrong.getMessage().startsWith("[GRAFT-R040]") && wrong.getMessage().contains("layout BARE was asked for")
          && wrong.getMessage().contains("layout BERT ('base_model.model.bert.encoder.layer.0.attention.self.query.hada_w1_a')"),
          wrong.getMessage());
      model.loadAdapter(prefixed, PeftLayout.BERT);

      Path resaved = dir.resolve("resaved");
      model.saveAdapter(resaved, PeftLayout.BERT);
      Map<String, TensorData> keys = Safetensors.read(resaved.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
      assertTrue(keys.containsKey("base_model.model.bert.encoder.layer.3.attention.self.value.hada_w2_b"), keys.keySet().toString());
      assertTrue(keys.containsKey("base_model.model.classifier.weight"), "the head stays outside bert.");
      assertTrue(config(resaved).getAsJsonArray("target_modules").contains(
          new com.google.gson.JsonPrimitive("bert.encoder.layer.3.attention.self.value")), config(resaved).toString());
    }
    Graft inferred = Graft.fromPeft(MiniLmHost.get(), prefixed);
    try (AdapterModel model = open(inferred)) {
      model.loadAdapter(prefixed);
      assertTrue(maxAbs(want, model.predict(inputs)) <= TOLERANCE);
    }
  }

  /** A copy of sample {@code sample} with its config changed by {@code edit}. */
  private static Path edited(Path dir, String sample, java.util.function.Consumer<JsonObject> edit) throws IOException {
    Path to = dir.resolve(sample + "-" + Long.toHexString(System.nanoTime()));
    copy(samples.resolve(sample), to, k -> k, t -> t);
    JsonObject c = config(to);
    edit.accept(c);
    writeConfig(to, c);
    return to;
  }

  private static JsonArray names(String... names) {
    JsonArray a = new JsonArray();
    for (String n : names) {
      a.add(n);
    }
    return a;
  }

  @Test
  void targetModulesAreResolvedAsPeftResolvesThem(@TempDir Path dir) throws IOException {
    float[][] want = peftLogits("lora-seq-cls");
    try (AdapterModel model = open(byHand("lora-seq-cls"))) {
      // A regex string is matched in full against module paths.
      model.loadAdapter(edited(dir, "lora-seq-cls", c -> c.addProperty("target_modules", ".*\\.(query|value)")));
      assertTrue(maxAbs(want, model.predict(inputs)) <= TOLERANCE);
      // Full module paths.
      JsonArray full = new JsonArray();
      for (int i = 0; i < 6; i++) {
        full.add("encoder.layer." + i + ".attention.self.query");
        full.add("encoder.layer." + i + ".attention.self.value");
      }
      model.loadAdapter(edited(dir, "lora-seq-cls", c -> c.add("target_modules", full)));
      // Dotted suffixes.
      model.loadAdapter(edited(dir, "lora-seq-cls", c -> c.add("target_modules", names("self.query", "self.value"))));

      FormatException more = assertThrows(FormatException.class, () -> model.loadAdapter(
          edited(dir, "lora-seq-cls", c -> c.add("target_modules", names("query", "value", "key")))));
      assertTrue(more.getMessage().contains("target_modules: expected [\"query\",\"value\"], given [\"query\",\"value\",\"key\"]")
          && more.getMessage().contains("only the file adapts [encoder.layer.0.attention.self.key,")
          && more.getMessage().contains("only the graft adapts []"), more.getMessage());
      FormatException regex = assertThrows(FormatException.class, () -> model.loadAdapter(
          edited(dir, "lora-seq-cls", c -> c.addProperty("target_modules", ".*layer\\.[0-4]\\..*\\.(query|value)"))));
      assertTrue(regex.getMessage().contains("only the graft adapts [encoder.layer.5.attention.self.query,"
          + " encoder.layer.5.attention.self.value]"), regex.getMessage());
      FormatException layers = assertThrows(FormatException.class, () -> model.loadAdapter(
          edited(dir, "lora-seq-cls", c -> c.add("layers_to_transform", names()))));
      assertTrue(layers.getMessage().contains("target_modules:"), layers.getMessage());
    }
  }

  @Test
  void lokrWithShortTargetNamesLoadsLikeItsFullPaths(@TempDir Path dir) throws IOException {
    Graft lokr = Graft.host(MiniLmHost.get()).lokr(".*/(query|value)/MatMul", l -> l.rank(4)).classification(2);
    Path saved = dir.resolve("lokr");
    float[][] before;
    try (AdapterModel model = open(lokr)) {
      model.trainStep(Map.of("input_ids", new long[][] {inputs.get("input_ids")[0]},
          "attention_mask", new long[][] {inputs.get("attention_mask")[0]},
          "token_type_ids", new long[][] {inputs.get("token_type_ids")[0]}), new long[] {1}, 0.01f);
      before = model.predict(inputs);
      model.saveAdapter(saved);
    }
    JsonObject c = config(saved);
    assertTrue(c.getAsJsonArray("target_modules").contains(new com.google.gson.JsonPrimitive(
        "encoder.layer.0.attention.self.query")), "Graft writes full paths: " + c);
    c.add("target_modules", names("query", "value"));
    writeConfig(saved, c);
    for (Graft g : List.of(lokr, Graft.fromPeft(MiniLmHost.get(), saved))) {
      try (AdapterModel model = open(g)) {
        model.loadAdapter(saved);
        float[][] after = model.predict(inputs);
        for (int i = 0; i < before.length; i++) {
          assertArrayEquals(before[i], after[i], 0f);
        }
      }
    }
  }

  @Test
  void aVeraFolderDeclaresItselfToo(@TempDir Path dir) throws IOException {
    Graft vera = Graft.host(MiniLmHost.get()).vera(".*/(query|value)/MatMul", v -> v.rank(16)).classification(2);
    Path saved = dir.resolve("vera");
    float[][] before;
    try (AdapterModel model = open(vera)) {
      model.trainStep(Map.of("input_ids", new long[][] {inputs.get("input_ids")[0]},
          "attention_mask", new long[][] {inputs.get("attention_mask")[0]},
          "token_type_ids", new long[][] {inputs.get("token_type_ids")[0]}), new long[] {1}, 0.05f);
      before = model.predict(inputs);
      model.saveAdapter(saved);
    }
    assertEquals("VERA", config(saved).get("peft_type").getAsString());
    Graft inferred = Graft.fromPeft(MiniLmHost.get(), saved);
    assertEquals("16", inferred.compile().manifest().getAdapters(0).getOptionsOrThrow("rank"));
    try (AdapterModel model = open(inferred)) {
      model.loadAdapter(saved);
      float[][] after = model.predict(inputs);
      for (int i = 0; i < before.length; i++) {
        assertArrayEquals(before[i], after[i], 0f);
      }
    }
    Path hidden = edited(dir, "lora-seq-cls", c -> {
      c.addProperty("peft_type", "VERA");
      c.addProperty("save_projection", false);
    });
    GraftCompileException x = assertThrows(GraftCompileException.class, () -> Graft.fromPeft(MiniLmHost.get(), hidden));
    assertTrue(x.getMessage().contains("[GRAFT150]") && x.getMessage().contains("save_projection = false"), x.getMessage());
  }

  @Test
  void optionsThatChangeTheFunctionAreCheckedAndNamed(@TempDir Path dir) throws IOException {
    try (AdapterModel model = open(byHand("lora-seq-cls"))) {
      Map<String, java.util.function.Consumer<JsonObject>> edits = new LinkedHashMap<>();
      edits.put("use_dora: expected false, given true", c -> c.addProperty("use_dora", true));
      edits.put("use_rslora: expected false, given true", c -> c.addProperty("use_rslora", true));
      edits.put("r: expected 8, given 4", c -> c.addProperty("r", 4));
      edits.put("lora_alpha: expected 16, given 32", c -> c.addProperty("lora_alpha", 32));
      edits.put("bias: expected \"none\", given \"all\"", c -> c.addProperty("bias", "all"));
      edits.put("fan_in_fan_out: expected false, given true", c -> c.addProperty("fan_in_fan_out", true));
      edits.put("lora_bias: expected false (Graft's adapter has no such option), given true", c -> c.addProperty("lora_bias", true));
      edits.put("r/rank_pattern: expected 8 {}, given 8 {\"value\":4} (encoder.layer.0.attention.self.value expected 8, given 4",
          c -> {
            JsonObject p = new JsonObject();
            p.addProperty("value", 4);
            c.add("rank_pattern", p);
          });
      edits.put("task_type: expected \"SEQ_CLS\" (or null), given \"CAUSAL_LM\"", c -> c.addProperty("task_type", "CAUSAL_LM"));
      edits.put("modules_to_save: expected [\"classifier\"], given [\"score\"] (missing [classifier])",
          c -> c.add("modules_to_save", names("score")));
      for (Map.Entry<String, java.util.function.Consumer<JsonObject>> e : edits.entrySet()) {
        Path folder = edited(dir, "lora-seq-cls", e.getValue());
        FormatException x = assertThrows(FormatException.class, () -> model.loadAdapter(folder), e.getKey());
        assertTrue(x.getMessage().contains(e.getKey()), e.getKey() + " in " + x.getMessage());
      }
      // A pattern that says what r says, unknown keys of a newer PEFT and another dropout are no error.
      List<String> notes = model.loadAdapter(edited(dir, "lora-seq-cls", c -> {
        JsonObject p = new JsonObject();
        p.addProperty("query", 8);
        c.add("rank_pattern", p);
        c.addProperty("use_future_trick", false);
        c.addProperty("lora_dropout", 0.1);
      }));
      assertTrue(notes.stream().anyMatch(n -> n.contains("[use_future_trick]")), notes.toString());
      assertTrue(notes.stream().anyMatch(n -> n.contains("lora_dropout is 0.1")), notes.toString());
      assertTrue(maxAbs(peftLogits("lora-seq-cls"), model.predict(inputs)) <= TOLERANCE);
    }
  }

  @Test
  void foldersGraftCannotDeclareAreCodedErrors(@TempDir Path dir) throws IOException {
    Map<String, java.util.function.Consumer<JsonObject>> edits = new LinkedHashMap<>();
    edits.put("[GRAFT150] PEFT adapter %s: peft_type = \"ADALORA\" cannot be declared", c -> c.addProperty("peft_type", "ADALORA"));
    edits.put("[GRAFT150] PEFT adapter %s: bias = \"lora_only\" cannot be declared", c -> c.addProperty("bias", "lora_only"));
    edits.put("[GRAFT150] PEFT adapter %s: init_lora_weights = \"olora\" cannot be declared",
        c -> c.addProperty("init_lora_weights", "olora"));
    edits.put("[GRAFT150] PEFT adapter %s: layer_replication = [[0,4]] cannot be declared", c -> {
      JsonArray r = new JsonArray();
      JsonArray pair = new JsonArray();
      pair.add(0);
      pair.add(4);
      r.add(pair);
      c.add("layer_replication", r);
    });
    edits.put("[GRAFT151] PEFT adapter %s: target_modules [\"q_proj\",\"v_proj\"] take no linear layer of host all-minilm-l6-v2.onnx",
        c -> c.add("target_modules", names("q_proj", "v_proj")));
    for (Map.Entry<String, java.util.function.Consumer<JsonObject>> e : edits.entrySet()) {
      Path folder = edited(dir, "lora-seq-cls", e.getValue());
      GraftCompileException x = assertThrows(GraftCompileException.class, () -> Graft.fromPeft(MiniLmHost.get(), folder));
      String expected = String.format(e.getKey(), folder);
      assertTrue(x.getMessage().contains(expected), expected + " in " + x.getMessage());
    }
  }

  @Test
  void aDecodersScoreHeadIsACodedErrorNamingIt(@TempDir Path dir) throws IOException {
    Path score = dir.resolve("score");
    copy(samples.resolve("lora-seq-cls"), score, k -> k, t -> t);
    Map<String, TensorData> t = new TreeMap<>(Safetensors.read(score.resolve(PeftAdapters.WEIGHTS_FILE)).tensors());
    t.put("base_model.model.score.weight", t.get("base_model.model.classifier.weight"));
    Safetensors.write(score.resolve(PeftAdapters.WEIGHTS_FILE), t, Map.of("format", "pt"));
    GraftCompileException x = assertThrows(GraftCompileException.class, () -> Graft.fromPeft(MiniLmHost.get(), score));
    assertTrue(x.getMessage().contains("[GRAFT150] PEFT adapter " + score + ": modules_to_save = [\"classifier\",\"classifier\",\"score\"]"
        + " cannot be declared") && x.getMessage().contains("base_model.model.score.weight"), x.getMessage());
    try (AdapterModel model = open(Graft.fromPeft(MiniLmHost.get(), samples.resolve("lora-seq-cls")))) {
      GraftException load = assertThrows(GraftException.class, () -> model.loadAdapter(score));
      assertTrue(load.getMessage().contains("base_model.model.score.weight"), load.getMessage());
    }
  }

  @Test
  void theInferredDeclarationKeepsPatternsAsDeclarationsOfTheirRank(@TempDir Path dir) throws IOException {
    Path folder = edited(dir, "lora-seq-cls", c -> {
      JsonObject p = new JsonObject();
      p.addProperty("value", 4);
      c.add("rank_pattern", p);
    });
    // Cut value's tensors to rank 4, as PEFT saves them under such a pattern.
    Path cut = dir.resolve("cut");
    copy(folder, cut, k -> k, t -> t);
    Map<String, TensorData> t = new TreeMap<>(Safetensors.read(cut.resolve(PeftAdapters.WEIGHTS_FILE)).tensors());
    for (String k : List.copyOf(t.keySet())) {
      if (k.contains(".value.lora_A")) {
        float[] v = t.get(k).toFloats();
        t.put(k, TensorData.ofFloats(new long[] {4, 384}, java.util.Arrays.copyOf(v, 4 * 384)));
      } else if (k.contains(".value.lora_B")) {
        float[] v = t.get(k).toFloats();
        float[] out = new float[384 * 4];
        for (int r = 0; r < 384; r++) {
          System.arraycopy(v, r * 8, out, r * 4, 4);
        }
        t.put(k, TensorData.ofFloats(new long[] {384, 4}, out));
      }
    }
    Safetensors.write(cut.resolve(PeftAdapters.WEIGHTS_FILE), t, Map.of("format", "pt"));
    Manifest m = Graft.fromPeft(MiniLmHost.get(), cut).compile().manifest();
    assertEquals(2, m.getAdaptersCount(), "one declaration per rank");
    assertEquals(Map.of("8", 6, "4", 6), Map.of(m.getAdapters(0).getOptionsOrThrow("rank"), m.getAdapters(0).getSitesCount(),
        m.getAdapters(1).getOptionsOrThrow("rank"), m.getAdapters(1).getSitesCount()));
    try (AdapterModel model = open(Graft.fromPeft(MiniLmHost.get(), cut))) {
      model.loadAdapter(cut);
      assertTrue(Stream.of(model.getParameterShape("encoder.layer.2.attention.self.value.lora_A"))
          .anyMatch(s -> s[1] == 4), "value at rank 4");
    }
  }
}
