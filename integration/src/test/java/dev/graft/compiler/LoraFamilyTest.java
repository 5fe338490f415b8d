package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.InferenceRun;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.TinyCnnHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.kinds.lora.DyLoraKind;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * The LoRA family on the tiny BERT host: DoRA and PiSSA as LoRA options, DyLoRA as its own kind.
 * Whole training steps against central differences in float64, initial values that leave the
 * host's output unchanged, the drawn rank of DyLoRA, saved names, configs and errors.
 */
class LoraFamilyTest {
  private static final String QV = ".*/(query|value)/MatMul";

  private static AdapterSpec lora(String target, Map<String, Object> options) {
    return Adapters.of("lora", target, options);
  }

  // ---------------------------------------------------------------- whole-step gradients

  @Test
  void doraWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        lora(QV, Map.of("rank", 2, "alpha", 4, "dora", true)))) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  /** Dropout of 1e-12 drops nothing in practice but places PEFT's DoRA-under-dropout form (an extra x_d·W term). */
  @Test
  void doraUnderDropoutWholeStepMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        lora(".*/(key|output/dense)/MatMul", Map.of("rank", 3, "alpha", 6, "dora", true, "dropout", 1e-12)))) {
      assertTrue(c.graft.train().getGraph().getNodeList().stream().anyMatch(n -> n.getName().endsWith("/dora/MatMul_W")),
          "the dropout form multiplies x_d by the host weight");
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void pissaWholeStepMatchesCentralDifferencesWithItsFactorsFrozen() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        lora(QV, Map.of("rank", 2, "alpha", 4, "init", "pissa")))) {
      List<String> frozen = c.params.stream().filter(Parameter::getFrozen).map(Parameter::getName).toList();
      assertEquals(8, frozen.size(), "A0 and B0 of 4 sites: " + frozen);
      assertTrue(frozen.contains("encoder.layer.0.attention.self.query.lora_A0"), frozen.toString());
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void doraWithPissaUnderDropoutWholeStepMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        lora(".*/layer.1/.*/(query|value)/MatMul", Map.of("rank", 2, "alpha", 4, "init", "pissa", "dora", true,
            "dropout", 1e-12)))) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void dyloraWholeStepMatchesCentralDifferencesAtTheSeedsRank() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        Adapters.of("dylora", QV, Map.of("rank", 4, "alpha", 8)))) {
      int drawn = DyLoraKind.drawnRank(c.seed, 4);
      assertTrue(drawn >= 2, "seed 12345 draws rank " + drawn + "; a rank of 1 would leave most of A and B unchecked");
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      // Columns of A and rows of B from the drawn rank on get no gradient.
      String a = "encoder.layer.0.attention.self.query.lora_A";
      double[] grad = c.run(Map.of(), Set.of(a + GraftCompiler.GRADIENT_SUFFIX)).get(a + GraftCompiler.GRADIENT_SUFFIX);
      for (int i = 0; i < TinyBertHost.HIDDEN; i++) {
        for (int j = 0; j < 4; j++) {
          assertEquals(j >= drawn, grad[i * 4 + j] == 0, "grad A[" + i + ", " + j + "] = " + grad[i * 4 + j]);
        }
      }
    }
  }

  // ---------------------------------------------------------------- DyLoRA's drawn rank

  @Test
  void drawnRanksAreUniformOverOneToRankForConsecutiveSeeds() {
    for (int rank : new int[] {1, 3, 8, 64}) {
      int[] counts = new int[rank + 1];
      int n = 4000 * rank;
      for (long seed = 42L * 1_000_003L; seed < 42L * 1_000_003L + n; seed++) {
        int b = DyLoraKind.drawnRank(seed, rank);
        assertTrue(b >= 1 && b <= rank, "seed " + seed + " drew " + b);
        counts[b]++;
      }
      for (int b = 1; b <= rank; b++) {
        assertEquals(4000, counts[b], 400, "rank " + b + " of " + rank);
      }
    }
    assertEquals(DyLoraKind.drawnRank(-7, 5), DyLoraKind.drawnRank(-7 + 2_147_483_647L, 5), "negative seeds: floor mod");
  }

  /**
   * The training graph draws exactly {@link DyLoraKind#drawnRank}: for each seed, its loss equals
   * that of plain LoRA (scaling alpha/k) whose A has only the first k = drawnRank(seed) columns, and
   * seeds of different ranks give different losses.
   */
  @Test
  void theTrainingGraphUsesTheRankTheSeedDraws() throws OrtException {
    Graph host = TinyBertHost.graph(11, TensorType.DOUBLE);
    int rank = 4;
    // alpha / k exact in float32 for every k: ONNX Runtime fuses plain LoRA's MatMul and constant
    // scaling into a FusedMatMul whose alpha is float32, even in a float64 graph.
    double alpha = 12;
    Map<Integer, Double> lossByRank = new HashMap<>();
    try (WholeStepCheck dy = WholeStepCheck.classification(host, Adapters.of("dylora", QV, Map.of("rank", rank, "alpha", alpha)))) {
      for (int k = 1; k <= rank; k++) {
        Map<String, double[]> masked = new HashMap<>();
        for (Parameter p : dy.params) {
          double[] v = dy.values.get(p.getName()).clone();
          if (p.getName().endsWith(".lora_A")) {
            for (int i = 0; i < v.length; i++) {
              v[i] = i % rank < k ? v[i] : 0;
            }
          }
          masked.put(p.getName(), v);
        }
        try (WholeStepCheck plain = WholeStepCheck.classification(host, Adapters.lora(QV, rank, alpha * rank / k))) {
          lossByRank.put(k, plain.loss(masked));
        }
      }
      Set<Integer> seen = new TreeSet<>();
      for (long seed = 0; seed < 24; seed++) {
        dy.seed = seed;
        int k = DyLoraKind.drawnRank(seed, rank);
        seen.add(k);
        double loss = dy.loss(Map.of());
        assertEquals(lossByRank.get(k), loss, 1e-12 * Math.abs(loss), "seed " + seed + ", rank " + k);
      }
      assertEquals(Set.of(1, 2, 3, 4), seen);
    }
    for (int k = 1; k < rank; k++) {
      assertNotEquals(lossByRank.get(k), lossByRank.get(k + 1), "ranks " + k + " and " + (k + 1) + " give different losses");
    }
  }

  // ---------------------------------------------------------------- initial values

  /**
   * At their initial values DoRA (magnitude = column norms, B = 0), PiSSA (A = A0, B = B0, any
   * values) and both together leave the inference graph's logits those of the host with the head
   * alone (plain LoRA with B = 0); a magnitude off the norms changes them.
   */
  @Test
  void doraAndPissaAtTheirInitialValuesLeaveTheHostOutputUnchanged() throws OrtException {
    Graph host = TinyBertHost.graph(11, TensorType.DOUBLE);
    Random r = new Random(5);
    Map<String, double[]> head = new HashMap<>();
    double[] reference = logits(host, lora(QV, Map.of("rank", 2)), (p, v) -> {
      fill(v, r, p.getInit() == Init.ZEROS ? 0 : 0.3);
      if (p.getSite().equals("classifier")) {
        head.put(p.getName(), v.clone());
      }
    });
    assertTrue(Math.abs(reference[0] - reference[1]) > 1e-3, "the head is not trivial: " + reference[0] + ", " + reference[1]);
    for (Map<String, Object> options : List.<Map<String, Object>>of(
        Map.of("rank", 2, "dora", true),
        Map.of("rank", 2, "init", "pissa"),
        Map.of("rank", 3, "alpha", 5, "init", "pissa", "dora", true))) {
      Map<String, double[]> factors = new HashMap<>();
      double[] adapted = logits(host, lora(QV, options), (p, v) -> {
        String name = p.getName();
        if (p.getSite().equals("classifier")) {
          System.arraycopy(head.get(name), 0, v, 0, v.length);
        } else if (p.getInit() == Init.HOST_COLUMN_NORM) {
          columnNorms(host, p.getInitSource(), v, 1);
        } else if (p.getInit() == Init.ZEROS) {
          java.util.Arrays.fill(v, 0);
        } else {
          // PiSSA: A0 = A and B0 = B, whatever the values; DoRA alone: A random.
          String key = name.replaceAll("0$", "");
          double[] shared = factors.computeIfAbsent(key, k -> {
            double[] x = new double[v.length];
            fill(x, r, 0.3);
            return x;
          });
          System.arraycopy(shared, 0, v, 0, v.length);
        }
      });
      for (int i = 0; i < reference.length; i++) {
        assertEquals(reference[i], adapted[i], 1e-12, options + " logit " + i);
      }
    }
    double[] scaled = logits(host, lora(QV, Map.of("rank", 2, "dora", true)), (p, v) -> {
      if (p.getSite().equals("classifier")) {
        System.arraycopy(head.get(p.getName()), 0, v, 0, v.length);
      } else if (p.getInit() == Init.HOST_COLUMN_NORM) {
        columnNorms(host, p.getInitSource(), v, 1.1);
      }
    });
    assertTrue(Math.abs(scaled[0] - reference[0]) > 1e-6, "a magnitude of 1.1 × the norms changes the output");
  }

  private static void fill(double[] v, Random r, double scale) {
    for (int i = 0; i < v.length; i++) {
      v[i] = scale * r.nextGaussian();
    }
  }

  /** {@code factor ×} the column norms of host weight {@code name} [in, out] into {@code v} [out]. */
  private static void columnNorms(Graph host, String name, double[] v, double factor) {
    double[] w = Tensors.readDoubles(host.initializers().get(name));
    int out = v.length;
    for (int j = 0; j < out; j++) {
      double sq = 0;
      for (int i = 0; i < w.length / out; i++) {
        sq += w[i * out + j] * w[i * out + j];
      }
      v[j] = factor * Math.sqrt(sq);
    }
  }

  private interface Values {
    void fill(Parameter p, double[] v);
  }

  /** The inference graph's logits for the fixed batch of {@link WholeStepCheck}, parameters as {@code values} sets them. */
  private static double[] logits(Graph hostGraph, AdapterSpec adapter, Values values) throws OrtException {
    return InferenceRun.logits(hostGraph, InferenceRun.compile(hostGraph, adapter), p -> {
      double[] v = new double[WholeStepCheck.size(p)];
      values.fill(p, v);
      return v;
    });
  }

  // ---------------------------------------------------------------- manifest and config

  @Test
  void doraSavesPeftsMagnitudeKeyAndConfig() {
    Manifest m = Graft.host(TinyBertHost.host(3)).lora("", l -> l.rank(2).dora(true)).classification(2).compile().manifest();
    assertEquals(List.of("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
        "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"), m.getAdapters(0).getSitesList(),
        "an empty target takes query and value");
    Parameter magnitude = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.1.attention.self.value.lora_magnitude_vector")).findFirst().orElseThrow();
    assertEquals("base_model.model.encoder.layer.1.attention.self.value.lora_magnitude_vector", magnitude.getSaveKey());
    assertEquals(List.of(8L), magnitude.getSaveShapeList());
    assertEquals(Init.HOST_COLUMN_NORM, magnitude.getInit());
    assertEquals("encoder.layer.1.attention.self.value.weight", magnitude.getInitSource());
    assertTrue(magnitude.getNoDecay() && !magnitude.getFrozen());
    assertTrue(m.getHostInitializersList().contains("encoder.layer.1.attention.self.value.weight"));
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("LORA", c.get("peft_type").getAsString());
    assertTrue(c.get("use_dora").getAsBoolean());
    assertEquals("true", c.get("init_lora_weights").toString());
    assertEquals("[\"query\",\"value\"]", c.get("target_modules").toString());
  }

  @Test
  void pissaSavesAAndBButNotItsFrozenFactors() {
    Manifest m = Graft.host(TinyBertHost.host(3)).lora(QV, l -> l.rank(2).alpha(4).init("pissa")).classification(2)
        .compile().manifest();
    Map<String, Parameter> byName = new HashMap<>();
    m.getParametersList().forEach(p -> byName.put(p.getName(), p));
    Parameter a = byName.get("encoder.layer.0.attention.self.query.lora_A");
    Parameter b0 = byName.get("encoder.layer.0.attention.self.query.lora_B0");
    assertEquals(Init.PISSA_A, a.getInit());
    assertEquals(2.0, a.getInitScale(), "the LoRA scaling alpha / r");
    assertEquals("encoder.layer.0.attention.self.query.weight", a.getInitSource());
    assertEquals("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", a.getSaveKey());
    assertEquals(Init.PISSA_B, b0.getInit());
    assertTrue(b0.getFrozen());
    assertEquals("", b0.getSaveKey());
    assertEquals(List.of(2L, 8L), b0.getShapeList());
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("\"pissa\"", c.get("init_lora_weights").toString());
    assertFalse(c.get("use_dora").getAsBoolean());
  }

  @Test
  void declarationsWithDifferentInitSaveGraftsConfig() {
    Manifest m = Graft.host(TinyBertHost.host(3))
        .lora(".*/query/MatMul", l -> l.rank(2).init("pissa"))
        .lora(".*/value/MatMul", l -> l.rank(2))
        .classification(2).compile().manifest();
    assertEquals("GRAFT", JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject().get("peft_type").getAsString());
  }

  @Test
  void dyloraSavesLorasKeysUnderGraftsConfig() {
    Manifest m = Graft.host(TinyBertHost.host(3)).dylora("", d -> d.rank(4).alpha(8)).classification(2).compile().manifest();
    assertEquals("dylora", m.getAdapters(0).getKind());
    assertEquals(Map.of("rank", "4", "alpha", "8", "dropout", "0"), m.getAdapters(0).getOptionsMap());
    assertEquals(4, m.getAdapters(0).getSitesCount());
    Parameter b = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.0.attention.self.value.lora_B")).findFirst().orElseThrow();
    assertEquals("base_model.model.encoder.layer.0.attention.self.value.lora_B.weight", b.getSaveKey());
    assertEquals(List.of(8L, 4L), b.getSaveShapeList());
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("GRAFT", c.get("peft_type").getAsString());
    assertEquals("dylora", c.getAsJsonArray("graft_adapters").get(0).getAsJsonObject().get("kind").getAsString());
    assertEquals("seed", m.getTrain().getSeed(), "the training step takes the per-step seed");
  }

  // ---------------------------------------------------------------- errors

  @Test
  void doraAndPissaOnATransposedGemmAreErrors() {
    for (Map<String, Object> options : List.<Map<String, Object>>of(Map.of("dora", true), Map.of("init", "pissa"))) {
      GraftCompileException e = assertThrows(GraftCompileException.class, () -> GraftCompiler.compile(
          new GraftSpec("Cnn", "tiny-cnn", List.of(lora(".*/fc/dense/Gemm", options)),
              new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), AdamWSpec.DEFAULT, null),
          HostModel.of("tiny-cnn", OnnxExport.write(TinyCnnHost.graph(1), "tiny-cnn"))).orThrow());
      Diagnostic d = e.diagnostics().get(0);
      assertEquals(ErrorCode.LORA_FAMILY_SITE_UNSUPPORTED, d.code(), d.message());
      assertEquals(options.containsKey("dora") ? "dora" : "init", d.attribute());
      assertTrue(d.message().startsWith("[GRAFT062] LoRA with ") && d.message().contains("/fc/dense/Gemm")
          && d.message().contains("transB=1"), d.message());
    }
  }

  @Test
  void pissaRankAboveTheWeightsRankIsAnError() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .lora(".*/layer.0/attention/self/query/MatMul", l -> l.rank(9).init("pissa")).classification(2).compile());
    Diagnostic d = e.diagnostics().get(0);
    assertEquals(ErrorCode.PISSA_RANK_TOO_LARGE, d.code());
    assertEquals("rank", d.attribute());
    assertEquals("[GRAFT063] PiSSA rank 9 exceeds the rank of the weight of /encoder/layer.0/attention/self/query/MatMul"
        + " [8, 8]; use rank <= 8", d.message());
  }

  @Test
  void anUnknownInitIsAnOptionError() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .lora("", l -> l.init("olora")).classification(2).compile());
    assertEquals("[GRAFT012] LoRA init must be one of [default, pissa, corda_ipm, corda_kpm], got olora", e.diagnostics().get(0).message());
    assertEquals(LoraKind.DEFAULT_TARGET, new LoraKind().defaultTarget(Adapters.lora("", 8, 16)));
  }
}
