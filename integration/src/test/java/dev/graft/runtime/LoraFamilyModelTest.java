package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DoRA, PiSSA and DyLoRA through the runtime on a tiny BERT-named host written to a file
 * (embeddings [30, 16] → two layers of query and value projections with biases, summed through
 * Tanh), with empty targets (the query and value default): initial values that leave the output
 * unchanged, a few training steps on a repeated batch, saved keys and shapes, bit-identical
 * reloads, DyLoRA's truncation and its export as a plain LoRA; and the default sites on MiniLM.
 */
class LoraFamilyModelTest {
  private static final int HIDDEN = QueryValueHost.HIDDEN;
  private static final long[][] IDS = {{1, 5, 9, 3, 7, 2}, {2, 4, 6, 8, 0, 0}, {11, 12, 13, 14, 15, 16}, {21, 3, 3, 9, 1, 1}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}};
  private static final long[] LABELS = {1, 0, 1, 0};
  private static final String QUERY = "encoder.layer.0.attention.self.query";
  @TempDir static Path hostDir;
  private static Path host;
  private static final Map<String, float[]> WEIGHTS = new LinkedHashMap<>();

  @BeforeAll
  static void writeHost() throws Exception {
    host = QueryValueHost.write(hostDir, WEIGHTS);
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

  private static float[] flat(float[][] rows) {
    float[] out = new float[rows.length * rows[0].length];
    for (int i = 0; i < rows.length; i++) {
      System.arraycopy(rows[i], 0, out, i * rows[0].length, rows[i].length);
    }
    return out;
  }

  /** The predictions of a plain LoRA at its initial values (B = 0): the host with the head alone. */
  private static float[] hostPredictions() {
    try (AdapterModel plain = open(Graft.host(host).lora("", l -> l.rank(4)).classification(2).compile())) {
      return flat(plain.predict(inputs()));
    }
  }

  /** Trains {@code steps} steps on the repeated batch; returns the first and the last loss. */
  private static float[] train(AdapterModel model, int steps, float learningRate) {
    float first = model.trainStep(inputs(), LABELS, learningRate);
    float last = first;
    for (int i = 1; i < steps; i++) {
      last = model.trainStep(inputs(), LABELS, learningRate);
      assertTrue(Float.isFinite(last), "step " + i + " loss " + last);
    }
    return new float[] {first, last};
  }

  /** Saves, reloads into a fresh model and checks the predictions are bit-identical; returns the saved tensors. */
  private static Map<String, TensorData> roundTrip(CompiledGraft graft, AdapterModel model, Path dir) {
    model.saveAdapter(dir);
    try (AdapterModel fresh = open(graft)) {
      fresh.loadAdapter(dir);
      assertArrayEquals(flat(model.predict(inputs())), flat(fresh.predict(inputs())), "bit-identical after reloading");
    }
    return Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
  }

  private static JsonObject config(Path dir) throws Exception {
    return JsonParser.parseString(Files.readString(dir.resolve(PeftAdapters.CONFIG_FILE), StandardCharsets.UTF_8))
        .getAsJsonObject();
  }

  @Test
  void doraStartsAtTheHostTrainsAndReloadsBitIdentically(@TempDir Path dir) throws Exception {
    CompiledGraft graft = Graft.host(host).lora("", l -> l.rank(4).dora(true)).classification(2).compile();
    float[] reference = hostPredictions();
    try (AdapterModel model = open(graft)) {
      float[] start = flat(model.predict(inputs()));
      for (int i = 0; i < start.length; i++) {
        assertEquals(reference[i], start[i], 1e-5, "DoRA at its initial values, logit " + i);
      }
      float[] m = model.getParameter(QUERY + ".lora_magnitude_vector");
      float[] w = WEIGHTS.get(QUERY + ".weight");
      double norm0 = 0;
      for (int i = 0; i < HIDDEN; i++) {
        norm0 += (double) w[i * HIDDEN] * w[i * HIDDEN];
      }
      assertEquals(Math.sqrt(norm0), m[0], 1e-6, "magnitude = the column norm of the host weight");
      float[] loss = train(model, 25, 0.02f);
      assertTrue(loss[1] < 0.7 * loss[0], "loss falls: " + loss[0] + " → " + loss[1]);
      Map<String, TensorData> saved = roundTrip(graft, model, dir);
      assertArrayEquals(new long[] {HIDDEN}, saved.get("base_model.model." + QUERY + ".lora_magnitude_vector").shape());
      assertArrayEquals(new long[] {4, HIDDEN}, saved.get("base_model.model." + QUERY + ".lora_A.weight").shape());
      assertArrayEquals(new long[] {HIDDEN, 4}, saved.get("base_model.model." + QUERY + ".lora_B.weight").shape());
      assertEquals(4 * 3 + 2, saved.size(), "A, B and the magnitude of 4 sites, and the head: " + saved.keySet());
      assertTrue(config(dir).get("use_dora").getAsBoolean());
    }
  }

  @Test
  void pissaStartsAtThePrincipalFactorsOfTheHostWithItsOutputUnchanged(@TempDir Path dir) throws Exception {
    CompiledGraft graft = Graft.host(host).lora("", l -> l.rank(4).alpha(8).init("pissa")).classification(2).compile();
    float[] reference = hostPredictions();
    try (AdapterModel model = open(graft)) {
      assertArrayEquals(reference, flat(model.predict(inputs())), "x·A·B − x·A0·B0 is exactly zero at the start");
      float[] a = model.getParameter(QUERY + ".lora_A");
      float[] b = model.getParameter(QUERY + ".lora_B");
      assertArrayEquals(a, model.getParameter(QUERY + ".lora_A0"));
      assertArrayEquals(b, model.getParameter(QUERY + ".lora_B0"));
      // s·A·B is the rank-4 truncated SVD of W: the residual W − s·A·B is orthogonal to A's columns (U_r).
      float[] w = WEIGHTS.get(QUERY + ".weight");
      double s = 8.0 / 4;
      double worst = 0;
      double scale = 0;
      for (int c = 0; c < 4; c++) {
        for (int j = 0; j < HIDDEN; j++) {
          double dot = 0;
          for (int i = 0; i < HIDDEN; i++) {
            double ab = 0;
            for (int k = 0; k < 4; k++) {
              ab += a[i * 4 + k] * b[k * HIDDEN + j];
            }
            dot += a[i * 4 + c] * (w[i * HIDDEN + j] - s * ab);
            scale = Math.max(scale, Math.abs(a[i * 4 + c] * w[i * HIDDEN + j]));
          }
          worst = Math.max(worst, Math.abs(dot));
        }
      }
      assertTrue(worst < 1e-5 * Math.max(1, scale * HIDDEN), "Aᵀ(W − s·A·B) = " + worst);
      assertTrue(scale > 0.01, "A is not zero");
      float[] loss = train(model, 25, 0.02f);
      assertTrue(loss[1] < 0.7 * loss[0], "loss falls: " + loss[0] + " → " + loss[1]);
      assertArrayEquals(a, model.getParameter(QUERY + ".lora_A0"), "A0 is frozen");
      Map<String, TensorData> saved = roundTrip(graft, model, dir);
      assertEquals(4 * 2 + 2, saved.size(), "A and B of 4 sites and the head, not A0 or B0: " + saved.keySet());
      assertArrayEquals(new long[] {4, HIDDEN}, saved.get("base_model.model." + QUERY + ".lora_A.weight").shape());
      assertEquals("pissa", config(dir).get("init_lora_weights").getAsString());
    }
  }

  @Test
  void dyloraTrainsTruncatesAndExportsAPlainLoraOfAnyRank(@TempDir Path dir) throws Exception {
    CompiledGraft graft = Graft.host(host).dylora("", d -> d.rank(8).alpha(16)).classification(2).compile();
    try (AdapterModel model = open(graft)) {
      assertArrayEquals(hostPredictions(), flat(model.predict(inputs())), "B = 0 at the start");
      float[] loss = train(model, 40, 0.02f);
      assertTrue(loss[1] < 0.7 * loss[0], "loss falls: " + loss[0] + " → " + loss[1]);
      Map<String, TensorData> saved = roundTrip(graft, model, dir.resolve("full"));
      assertArrayEquals(new long[] {8, HIDDEN}, saved.get("base_model.model." + QUERY + ".lora_A.weight").shape());
      assertArrayEquals(new long[] {HIDDEN, 8}, saved.get("base_model.model." + QUERY + ".lora_B.weight").shape());
      assertEquals("GRAFT", config(dir.resolve("full")).get("peft_type").getAsString());

      float[] full = flat(model.predict(inputs()));
      model.truncateRank(8);
      assertArrayEquals(full, flat(model.predict(inputs())), "truncating to the maximum rank changes nothing");

      model.saveAdapter(dir.resolve("rank3"), 3);
      JsonObject c = config(dir.resolve("rank3"));
      assertEquals("LORA", c.get("peft_type").getAsString());
      assertEquals(3, c.get("r").getAsInt());
      assertEquals(16, c.get("lora_alpha").getAsInt());
      assertEquals("[\"query\",\"value\"]", c.get("target_modules").toString());
      Map<String, TensorData> exported = Safetensors.read(dir.resolve("rank3").resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
      assertArrayEquals(new long[] {3, HIDDEN}, exported.get("base_model.model." + QUERY + ".lora_A.weight").shape());
      assertArrayEquals(new long[] {HIDDEN, 3}, exported.get("base_model.model." + QUERY + ".lora_B.weight").shape());
      float[] a = model.getParameter(QUERY + ".lora_A");
      assertEquals(a[1 * 8 + 2], exported.get("base_model.model." + QUERY + ".lora_A.weight").toFloats()[2 * HIDDEN + 1],
          "A[1, 2] is saved at [2, 1]");

      float[] plainPredictions;
      try (AdapterModel plain = open(Graft.host(host).lora("", l -> l.rank(3).alpha(16)).classification(2).compile())) {
        plain.loadAdapter(dir.resolve("rank3"));
        plainPredictions = flat(plain.predict(inputs()));
      }
      model.truncateRank(3);
      float[] truncated = flat(model.predict(inputs()));
      double worst = 0;
      for (int i = 0; i < truncated.length; i++) {
        worst = Math.max(worst, Math.abs(truncated[i] - plainPredictions[i]));
      }
      System.out.printf("DyLoRA rank 3: truncated vs exported plain LoRA, max |Δ logit| = %.3g%n", worst);
      assertTrue(worst <= 1e-5, "the truncated model and the exported rank-3 LoRA differ by " + worst);
      boolean changed = false;
      for (int i = 0; i < full.length; i++) {
        changed |= Math.abs(full[i] - truncated[i]) > 1e-4;
      }
      assertTrue(changed, "rank 3 predicts differently from rank 8");
      float[] b = model.getParameter(QUERY + ".lora_B");
      assertEquals(0f, b[5 * HIDDEN + 7], "B's rows from the rank on are zero");
      assertEquals(0f, model.getParameter(QUERY + ".lora_A")[4 * 8 + 3], "A's columns from the rank on are zero");

      GraftException bad = assertThrows(GraftException.class, () -> model.truncateRank(9));
      assertTrue(bad.getMessage().contains("rank must be in 1..8"), bad.getMessage());
    }
    try (AdapterModel dora = open(Graft.host(host).lora("", l -> l.dora(true)).classification(2).compile())) {
      GraftException none = assertThrows(GraftException.class, () -> dora.truncateRank(2));
      assertTrue(none.getMessage().contains("has no adapter of nested ranks (such as DyLoRA)"), none.getMessage());
    }
  }

  /** Every kind of the family with an empty target on the real host: the query and value projections of 6 layers. */
  @Test
  void emptyTargetsTakeQueryAndValueOnMiniLm() throws Exception {
    HostModel miniLm;
    try (InputStream in = LoraFamilyModelTest.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
      miniLm = HostModel.read(in, "all-minilm-l6-v2.onnx");
    }
    Map<String, long[][]> batch = Map.of("input_ids", new long[][] {{101, 2023, 2003, 2204, 102}},
        "attention_mask", new long[][] {{1, 1, 1, 1, 1}}, "token_type_ids", new long[][] {{0, 0, 0, 0, 0}});
    float[] reference;
    try (AdapterModel plain = AdapterModel.open(Graft.graphs(Graft.host(miniLm).lora("").classification(2).compile()))) {
      reference = flat(plain.predict(batch));
    }
    for (Graft g : List.of(Graft.host(miniLm).lora("", l -> l.dora(true).init("pissa")), Graft.host(miniLm).dylora(""))) {
      CompiledGraft graft = g.classification(2).compile();
      assertEquals(12, graft.manifest().getAdapters(0).getSitesCount());
      assertTrue(graft.manifest().getAdapters(0).getSitesList().stream().allMatch(s -> s.endsWith(".query") || s.endsWith(".value")));
      long start = System.nanoTime();
      try (AdapterModel model = AdapterModel.open(Graft.graphs(graft))) {
        System.out.printf("%s on MiniLM opened and initialized in %.2f s%n", graft.manifest().getAdapters(0).getKind(),
            (System.nanoTime() - start) / 1e9);
        float[] start0 = flat(model.predict(batch));
        for (int i = 0; i < start0.length; i++) {
          assertEquals(reference[i], start0[i], 1e-4, graft.manifest().getAdapters(0).getKind() + " logit " + i);
        }
        float loss = model.trainStep(batch, new long[] {1}, 1e-3f);
        assertTrue(Float.isFinite(loss), "loss " + loss);
        assertFalse(java.util.Arrays.equals(start0, flat(model.predict(batch))), "a step changes the predictions");
      }
    }
  }
}
