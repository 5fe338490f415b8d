package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.merge.Merge;
import dev.graft.runtime.state.Calibration;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
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
 * CorDA (LoRA {@code init = "corda_ipm"} / {@code "corda_kpm"}) through the runtime on a tiny
 * BERT-named host written to a file (embeddings [30, 16] → two layers of query and value
 * projections with biases, summed through Tanh): training refused before calibration, the
 * calibrated covariance of layer 0's input (the embedding rows) against a recomputation in Java,
 * the output unchanged at the start, the frozen factors, and the trained adapter converted to a
 * plain LoRA of rank 2r on the original host and to a merged ONNX, both giving the trained outputs.
 */
class CordaModelTest {
  private static final int HIDDEN = QueryValueHost.HIDDEN;
  private static final int RANK = 4;
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

  private static CompiledGraft corda(String init) {
    return Graft.host(host).lora("", l -> l.rank(RANK).alpha(8).init(init)).classification(2).compile();
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    return m;
  }

  /** The calibration data: the batch, split in two batches of two examples. */
  private static List<Batch> calibrationBatches() {
    return List.of(new Batch(Map.of("input_ids", new long[][] {IDS[0], IDS[1]}, "attention_mask",
        new long[][] {MASK[0], MASK[1]}), new long[] {1, 0}), new Batch(Map.of("input_ids", new long[][] {IDS[2], IDS[3]},
        "attention_mask", new long[][] {MASK[2], MASK[3]}), new long[] {1, 0}));
  }

  private static float[] flat(float[][] rows) {
    float[] out = new float[rows.length * rows[0].length];
    for (int i = 0; i < rows.length; i++) {
      System.arraycopy(rows[i], 0, out, i * rows[0].length, rows[i].length);
    }
    return out;
  }

  /** The predictions of a plain LoRA at its initial values (B = 0): the host with the same head (same seed). */
  private static float[] hostPredictions() {
    try (AdapterModel plain = open(Graft.host(host).lora("", l -> l.rank(RANK)).classification(2).compile())) {
      return flat(plain.predict(inputs()));
    }
  }

  private static double maxDifference(float[] a, float[] b) {
    double worst = 0;
    for (int i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    return worst;
  }

  @Test
  void trainingBeforeCalibrationIsR340AndNoDataR341() {
    try (AdapterModel model = open(corda("corda_ipm"))) {
      GraftException e = assertThrows(GraftException.class, () -> model.trainStep(inputs(), LABELS, 0.01f));
      assertEquals(RuntimeErrorCode.CALIBRATION_REQUIRED, e.getErrorCode());
      assertTrue(e.getMessage().contains("[GRAFT-R340]") && e.getMessage().contains("calibrate"), e.getMessage());
      GraftException empty = assertThrows(GraftException.class, () -> model.calibrate(List.of()));
      assertEquals(RuntimeErrorCode.CALIBRATION_DATA, empty.getErrorCode());
      assertTrue(empty.getMessage().contains("[GRAFT-R341]"), empty.getMessage());
      model.calibrate(calibrationBatches());
      assertTrue(Float.isFinite(model.trainStep(inputs(), LABELS, 0.01f)), "trains once calibrated");
      model.initialize();
      assertEquals(RuntimeErrorCode.CALIBRATION_REQUIRED,
          assertThrows(GraftException.class, () -> model.trainStep(inputs(), LABELS, 0.01f)).getErrorCode(),
          "initialize() resets the factors to zero, so calibration is needed again");
    }
    try (AdapterModel plain = open(Graft.host(host).lora("", l -> l.rank(RANK)).classification(2).compile())) {
      assertEquals(RuntimeErrorCode.ARGUMENT,
          assertThrows(GraftException.class, () -> plain.calibrate(calibrationBatches())).getErrorCode(),
          "a graft with nothing to calibrate says so");
    }
  }

  @Test
  void covarianceMatchesAJavaRecomputationAndTheOutputStartsAsTheHosts() {
    CompiledGraft graft = corda("corda_ipm");
    Parameter a = graft.manifest().getParametersList().stream().filter(p -> p.getName().equals(QUERY + ".lora_A"))
        .findFirst().orElseThrow();
    assertEquals(Init.CORDA_A, a.getInit());
    assertFalse(a.getCovarianceInput().isEmpty(), "the manifest names the site's input");
    float[] reference = hostPredictions();
    try (AdapterModel model = open(graft)) {
      Calibration c = model.calibrate(calibrationBatches());
      assertEquals(2, c.covariances().size(), "one input per layer (query and value read the same): " + c.samples());
      // Layer 0 reads the embedding rows: recompute PEFT's covariance from them per example.
      float[] table = WEIGHTS.get("embeddings.word_embeddings.weight");
      double[] expected = new double[HIDDEN * HIDDEN];
      for (int b = 0; b < IDS.length; b++) {
        double max = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < IDS[b].length; t++) {
          for (int j = 0; j < HIDDEN && MASK[b][t] == 1; j++) {
            max = Math.max(max, table[(int) IDS[b][t] * HIDDEN + j]);
          }
        }
        for (int t = 0; t < IDS[b].length; t++) {
          if (MASK[b][t] == 0) {
            continue;
          }
          for (int i = 0; i < HIDDEN; i++) {
            for (int j = 0; j < HIDDEN; j++) {
              expected[i * HIDDEN + j] += table[(int) IDS[b][t] * HIDDEN + i] / Math.abs(max)
                  * table[(int) IDS[b][t] * HIDDEN + j] / Math.abs(max) / IDS.length;
            }
          }
        }
      }
      double[] got = c.covariances().get(a.getCovarianceInput());
      double worst = 0;
      for (int i = 0; i < expected.length; i++) {
        worst = Math.max(worst, Math.abs(got[i] - expected[i]));
      }
      System.out.printf("CorDA covariance of layer 0's input: max |Graft − Java| = %.3g over %d samples%n", worst,
          c.samples().get(a.getCovarianceInput()));
      assertTrue(worst < 1e-9, "covariance max difference " + worst);
      assertEquals(4L, c.samples().get(a.getCovarianceInput()));

      float[] start = flat(model.predict(inputs()));
      double diff = maxDifference(reference, start);
      System.out.printf("CorDA IPM after calibration: max |output − host's| = %.3g%n", diff);
      assertTrue(diff < 1e-6, "the output starts as the host's: " + diff);
      float[] qa = model.getParameter(QUERY + ".lora_A");
      assertArrayEquals(qa, model.getParameter(QUERY + ".lora_A0"));
      assertArrayEquals(model.getParameter(QUERY + ".lora_B"), model.getParameter(QUERY + ".lora_B0"));
      assertTrue(maxDifference(qa, new float[qa.length]) > 1e-2, "A is set");
      // The factors are those of the covariance the pass returned (the same computation as CovarianceFactorsTest pins).
      var f = dev.graft.runtime.state.CovarianceFactors.of("q", WEIGHTS.get(QUERY + ".weight"), HIDDEN, HIDDEN, got,
          RANK, 8.0 / RANK, false);
      assertTrue(maxDifference(f.a(), qa) < 1e-6, "A from the SVD of W·C");
    }
    try (AdapterModel kpm = open(corda("corda_kpm"))) {
      kpm.calibrate(calibrationBatches());
      assertTrue(maxDifference(reference, flat(kpm.predict(inputs()))) < 1e-6, "KPM also starts as the host");
    }
  }

  @Test
  void theTrainedAdapterConvertsToAPlainLoraOfTwiceTheRankOnTheOriginalHostAndToAMergedOnnx(@TempDir Path dir)
      throws Exception {
    CompiledGraft graft = corda("corda_ipm");
    try (AdapterModel model = open(graft)) {
      model.calibrate(calibrationBatches());
      float first = model.trainStep(inputs(), LABELS, 0.02f);
      float last = first;
      for (int i = 1; i < 25; i++) {
        last = model.trainStep(inputs(), LABELS, 0.02f);
      }
      assertTrue(last < 0.7 * first, "loss falls: " + first + " → " + last);
      float[][] trained = model.predict(inputs());
      assertTrue(maxDifference(hostPredictions(), flat(trained)) > 1e-2, "training moved the outputs");

      // PEFT's path_initial_model_for_weight_conversion: ΔW = s·(A·B − A0·B0) = s·[A, A0]·[B; −B0], rank 2r.
      CompiledGraft plain = Graft.host(host).lora("", l -> l.rank(2 * RANK).alpha(16)).classification(2).compile();
      Path peft = dir.resolve("plain-lora");
      try (AdapterModel target = open(plain)) {
        Merge.method("cat").add(model.delta("corda"), 1).run().savePeft(peft, target.getManifest());
      }
      JsonObject config = JsonParser.parseString(Files.readString(peft.resolve(PeftAdapters.CONFIG_FILE),
          StandardCharsets.UTF_8)).getAsJsonObject();
      assertEquals(2 * RANK, config.get("r").getAsInt());
      assertTrue(config.get("init_lora_weights").getAsBoolean(), "a plain LoRA: " + config);
      try (AdapterModel target = open(plain)) {
        target.loadAdapter(peft);
        double worst = maxDifference(flat(trained), flat(target.predict(inputs())));
        System.out.printf("CorDA → plain LoRA r%d on the original host: max |Δ output| = %.3g%n", 2 * RANK, worst);
        assertTrue(worst < 1e-5, "the plain LoRA on the original host gives the trained outputs: " + worst);
      }

      Path merged = dir.resolve("merged");
      model.exportMerged(merged, ExportOptions.defaults());
      ExportFixtures.BareResult bare = ExportFixtures.bareRun(merged.resolve("model.onnx"), inputs(), dir);
      double worst = maxDifference(flat(trained), flat(bare.rows(graft.manifest().getLogits(), 2)));
      System.out.printf("CorDA merged ONNX (plain ONNX Runtime): max |Δ output| = %.3g%n", worst);
      assertTrue(worst < 1e-5, "the merged export gives the trained outputs: " + worst);
    }
  }
}
