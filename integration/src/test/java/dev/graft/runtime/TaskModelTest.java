package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.dsl.Graft;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import dev.graft.spec.manifest.Loss;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every task through the runtime, on a tiny host written to a file: embeddings [20, 8] →
 * {@code /layer.0/dense/MatMul} [8, 8] → Tanh = {@code last_hidden_state}, and {@code logits} =
 * that times a vocabulary projection [8, 20]. Each task trains with its own label type and
 * rejects the others' with a clear error.
 */
class TaskModelTest {
  private static final int VOCAB = 20;
  private static final long[][] IDS = {{1, 5, 9, 3, 7}, {2, 4, 6, 0, 0}, {11, 12, 13, 14, 15}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}};
  @TempDir static Path hostDir;
  private static Path host;

  @BeforeAll
  static void writeHost() throws Exception {
    Graph g = new Graph();
    List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
    g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
    g.addInput("attention_mask", TensorType.of(TensorType.INT64, bs));
    Random r = new Random(1);
    String emb = g.op("/embeddings/Gather", "Gather", List.of(weight(g, r, "embeddings.weight", VOCAB, 8), "input_ids"));
    String h = g.op("/layer.0/dense/MatMul", "MatMul", List.of(emb, weight(g, r, "layer.0.dense.weight", 8, 8)));
    g.outputs().add(g.opTo("last_hidden_state", "/layer.0/act/Tanh", "Tanh", List.of(h)));
    g.outputs().add(g.opTo("logits", "/lm_head/MatMul", "MatMul", List.of("last_hidden_state",
        weight(g, r, "lm_head.weight", 8, VOCAB))));
    ShapeInference.run(g);
    host = hostDir.resolve("tiny-task-host.onnx");
    Files.write(host, OnnxExport.write(g, "tiny-task-host").toByteArray());
  }

  private static String weight(Graph g, Random r, String name, long rows, long cols) {
    double[] v = new double[(int) (rows * cols)];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian() / Math.sqrt(rows);
    }
    g.addInitializer(Tensors.floats(name, TensorType.FLOAT, List.of(rows, cols), v), false);
    return name;
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3));
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    return m;
  }

  private static Graft lora() {
    return Graft.host(host).lora(".*/dense/MatMul", l -> l.rank(2).alpha(4));
  }

  @Test
  void causalLmTrainsOnItsOwnTokensAndPredictsPerPosition(@TempDir Path out) throws Exception {
    CompiledGraft graft = lora().causalLm(o -> o.output("logits")).compile();
    float first;
    float last = Float.NaN;
    try (AdapterModel model = open(graft)) {
      assertEquals(Loss.CAUSAL_LM_CROSS_ENTROPY, model.getLoss());
      first = model.trainStep(inputs(), 0.05f);
      for (int i = 0; i < 30; i++) {
        last = model.trainStep(inputs(), 0.05f);
      }
      assertTrue(last < first - 0.1, "loss falls: " + first + " → " + last);
      float[][][] logits = model.predictSequence(inputs());
      assertEquals(3, logits.length);
      assertEquals(5, logits[0].length);
      assertEquals(VOCAB, logits[0][0].length);
      GraftException wrongPredict = assertThrows(GraftException.class, () -> model.predict(inputs()));
      assertTrue(wrongPredict.getMessage().contains("predictSequence"), wrongPredict.getMessage());
      GraftException wrongLabels = assertThrows(GraftException.class,
          () -> model.trainStep(inputs(), new long[] {1, 2, 3}, 0.1f));
      assertTrue(wrongLabels.getMessage().contains("CAUSAL_LM_CROSS_ENTROPY"), wrongLabels.getMessage());
      TensorMismatchException shape = assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new long[][] {{1, 2, 3, 4, 5}, {1, 2, 3, 4, 5}}, 0.1f));
      assertTrue(shape.getExpected().contains("[3, 5]"), shape.getMessage());
      TensorMismatchException range = assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new long[][] {{1, 2, 3, 4, 5}, {1, 2, 20, 4, 5}, {1, 2, 3, 4, 5}}, 0.1f));
      assertTrue(range.getExpected().contains("[0, 20) or the ignore index -100"), range.getMessage());
      PeftAdapters.save(model, out);
    }
    JsonObject config = JsonParser.parseString(
        Files.readString(out.resolve(PeftAdapters.CONFIG_FILE), StandardCharsets.UTF_8)).getAsJsonObject();
    assertEquals("CAUSAL_LM", config.get("task_type").getAsString());
    assertEquals(0, config.getAsJsonArray("modules_to_save").size(), "no head");
  }

  @Test
  void tokenClassificationTrainsOnOneLabelPerTokenAndSavesAHuggingFaceTokenHead(@TempDir Path out) throws Exception {
    CompiledGraft graft = lora().tokenClassification(3, o -> o.output("last_hidden_state")).compile();
    long[][] labels = {{0, 1, 2, -100, 1}, {2, 2, 0, 1, 1}, {1, 0, 0, 2, -100}};
    float[][][] before;
    try (AdapterModel model = open(graft)) {
      assertEquals(Loss.TOKEN_CROSS_ENTROPY, model.getLoss());
      float first = model.trainStep(inputs(), labels, 0.05f);
      float last = Float.NaN;
      for (int i = 0; i < 30; i++) {
        last = model.trainStep(inputs(), labels, 0.05f);
      }
      assertTrue(last < first - 0.1, "loss falls: " + first + " → " + last);
      before = model.predictSequence(inputs());
      assertEquals(3, before.length);
      assertEquals(5, before[0].length);
      assertEquals(3, before[0][0].length);
      GraftException wrongPredict = assertThrows(GraftException.class, () -> model.predict(inputs()));
      assertTrue(wrongPredict.getMessage().contains("predictSequence(hostInputs) for [batch][sequence][num_labels]"),
          wrongPredict.getMessage());
      GraftException classes = assertThrows(GraftException.class,
          () -> model.trainStep(inputs(), new long[] {1, 2, 0}, 0.1f));
      assertTrue(classes.getMessage().contains("TOKEN_CROSS_ENTROPY; call trainStep(hostInputs, long[][] labels, "
          + "learningRate)"), classes.getMessage());
      GraftException none = assertThrows(GraftException.class, () -> model.trainStep(inputs(), 0.1f));
      assertTrue(none.getMessage().contains("long[][] labels"), none.getMessage());
      TensorMismatchException range = assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new long[][] {{0, 1, 2, 0, 1}, {0, 3, 0, 0, 0}, {0, 0, 0, 0, 0}}, 0.1f));
      assertTrue(range.getExpected().contains("classes in [0, 3) or the ignore index -100"), range.getMessage());
      PeftAdapters.save(model, out);
    }
    JsonObject config = JsonParser.parseString(
        Files.readString(out.resolve(PeftAdapters.CONFIG_FILE), StandardCharsets.UTF_8)).getAsJsonObject();
    assertEquals("TOKEN_CLS", config.get("task_type").getAsString());
    assertEquals("classifier", config.getAsJsonArray("modules_to_save").get(0).getAsString());
    byte[] st = Files.readAllBytes(out.resolve(PeftAdapters.WEIGHTS_FILE));
    long headerLength = java.nio.ByteBuffer.wrap(st, 0, 8).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong();
    JsonObject header = JsonParser.parseString(new String(st, 8, (int) headerLength, StandardCharsets.UTF_8))
        .getAsJsonObject();
    // BertForTokenClassification's classifier: nn.Linear(hidden, num_labels), weight [num_labels, hidden].
    assertEquals("[3,8]", header.getAsJsonObject("base_model.model.classifier.weight").get("shape").toString());
    assertEquals("[3]", header.getAsJsonObject("base_model.model.classifier.bias").get("shape").toString());
    try (AdapterModel fresh = open(graft)) {
      PeftAdapters.load(fresh, out);
      float[][][] after = fresh.predictSequence(inputs());
      for (int i = 0; i < before.length; i++) {
        for (int t = 0; t < before[i].length; t++) {
          assertArrayEquals(before[i][t], after[i][t], 0f, "row " + i + " token " + t);
        }
      }
    }
  }

  @Test
  void causalLmDefaultLabelsAreTheInputIds() {
    CompiledGraft graft = lora().causalLm(o -> o.output("logits")).compile();
    try (AdapterModel a = open(graft); AdapterModel b = open(graft)) {
      float implicit = a.trainStep(inputs(), 0.01f);
      float explicit = b.trainStep(inputs(), IDS, 0.01f);
      assertEquals(implicit, explicit, 0f);
      long[][] ignored = new long[3][5];
      for (long[] row : ignored) {
        java.util.Arrays.fill(row, -100);
      }
      assertEquals(0f, b.trainStep(inputs(), ignored, 0.01f), 0f, "every label ignored");
    }
  }

  @Test
  void regressionTrainsOnFloatTargetsAndRoundTripsAsPeft(@TempDir Path out) {
    CompiledGraft graft = lora().regression(2).compile();
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < IDS.length; i++) {
      Map<String, long[]> f = new LinkedHashMap<>();
      f.put("input_ids", IDS[i]);
      f.put("attention_mask", MASK[i]);
      train.add(Example.withTargets(f, i - 1f, 0.5f * i));
    }
    float[][] before;
    try (AdapterModel model = open(graft)) {
      assertEquals("targets", model.getManifest().getTrain().getLabels());
      Trainer trainer = Trainer.builder().batchSize(3).epochs(40).learningRate(0.05f).progress(null).build();
      TrainingResult r = trainer.fit(model, train, List.of());
      assertTrue(r.epochs().get(39).meanLoss() < r.epochs().get(0).meanLoss() / 4, "MSE falls: " + r.epochs());
      TensorMismatchException width = assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new float[][] {{1}, {2}, {3}}, 0.1f));
      assertTrue(width.getExpected().contains("float32[3, 2]"), width.getMessage());
      assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new float[][] {{1, 2}, {Float.NaN, 0}, {3, 4}}, 0.1f));
      GraftException wrong = assertThrows(GraftException.class, () -> model.trainStep(inputs(), 0.1f));
      assertTrue(wrong.getMessage().contains("float[][] targets"), wrong.getMessage());
      before = model.predict(inputs());
      assertEquals(2, before[0].length);
      model.saveAdapter(out);
    }
    try (AdapterModel fresh = open(graft)) {
      fresh.loadAdapter(out);
      float[][] after = fresh.predict(inputs());
      for (int i = 0; i < before.length; i++) {
        assertArrayEquals(before[i], after[i], 0f, "row " + i);
      }
    }
  }

  @Test
  void multiLabelTakesZeroOneTargetsAndReportsLabelAccuracy() {
    CompiledGraft graft = lora().multiLabel(3).compile();
    float[][] targets = {{1, 0, 1}, {0, 1, 0}, {1, 1, 0}};
    try (AdapterModel model = open(graft)) {
      float first = model.trainStep(inputs(), targets, 0.05f);
      float last = first;
      for (int i = 0; i < 40; i++) {
        last = model.trainStep(inputs(), targets, 0.05f);
      }
      assertTrue(last < first / 2, "BCE falls: " + first + " → " + last);
      TensorMismatchException range = assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new float[][] {{1, 0, 2}, {0, 1, 0}, {1, 1, 0}}, 0.1f));
      assertTrue(range.getExpected().contains("[0, 1]"), range.getMessage());
      List<Example> examples = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        examples.add(Example.withTargets(Map.of("input_ids", IDS[i], "attention_mask", MASK[i]), targets[i]));
      }
      assertEquals(1.0, Trainer.builder().progress(null).build().evaluate(model, examples), 1e-9);
    }
  }

  @Test
  void classificationAcceptsTheIgnoreIndexAndNothingElseOutOfRange() {
    CompiledGraft graft = lora().classification(2, h -> h.ignoreIndex(-1).labelSmoothing(0.1)).compile();
    try (AdapterModel model = open(graft)) {
      float loss = model.trainStep(inputs(), new long[] {-1, 1, 0}, 0.01f);
      assertTrue(loss > 0 && Float.isFinite(loss), "loss " + loss);
      assertEquals(0f, model.trainStep(inputs(), new long[] {-1, -1, -1}, 0.01f), 0f);
      TensorMismatchException bad = assertThrows(TensorMismatchException.class,
          () -> model.trainStep(inputs(), new long[] {-100, 1, 0}, 0.01f));
      assertTrue(bad.getExpected().contains("or the ignore index -1"), bad.getMessage());
      GraftException wrong = assertThrows(GraftException.class,
          () -> model.trainStep(inputs(), new float[][] {{1, 0}, {1, 0}, {1, 0}}, 0.01f));
      assertTrue(wrong.getMessage().contains("long[] labels"), wrong.getMessage());
    }
  }
}
