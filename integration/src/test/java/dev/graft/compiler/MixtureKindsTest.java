package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.InferenceRun;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Mixture of LoRA experts and multi-head routing: whole training steps against central
 * differences on the float64 tiny BERT (2 layers, hidden 8, FFN 16), the load-balancing loss in
 * the step, a one-expert mixture against LoRA, shared pieces, saved names and errors.
 *
 * <p>The top-k router's selection is piecewise constant: its steps are checked at seeded random
 * parameters, where no two logits of a token lie within the perturbation (h = 1e-6) of each other,
 * so the central differences never cross a selection boundary.
 */
class MixtureKindsTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);
  private static final String ALL_LINEAR = ".*/(query|key|value|dense)/MatMul";

  private static double check(AdapterSpec adapter) throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("%s %s: max FD error %.3g%n", adapter.kind(), adapter.options(), worst);
      return worst;
    }
  }

  private static AdapterSpec mixture(String target, Map<String, Object> options) {
    return Adapters.of("mixture_lora", target, options);
  }

  @Test
  void softMixtureWholeStepMatchesCentralDifferences() throws OrtException {
    check(mixture("", Map.of("experts", 3, "rank", 2, "alpha", 3)));
  }

  @Test
  void topKMixtureWithLoadBalanceWholeStepMatchesCentralDifferences() throws OrtException {
    AdapterSpec adapter = mixture(ALL_LINEAR, Map.of("experts", 4, "rank", 2, "router", "top_k", "topK", 2,
        "auxLossWeight", 0.5));
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      List<String> aux = c.graft.manifest().getAuxiliaryLossesList();
      assertEquals(12, aux.size(), "one load-balancing loss per site (6 linear sites × 2 layers): " + aux);
      assertEquals("encoder.layer.0.attention.self.query.mixture_lora.router.load_balance", aux.get(0));
      assertTrue(c.trainOutputs().containsAll(aux));
      // Each term is E · Σ_e f_e · P_e with f_e <= 1 and Σ_e P_e = 1: in (0, E].
      Map<String, double[]> out = c.run(Map.of(), Set.copyOf(aux));
      for (String name : aux) {
        double v = out.get(name)[0];
        assertTrue(v > 0 && v <= 4, name + " = " + v);
      }
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("mixture top-2 of 4 with load balance: max FD error %.3g%n", worst);
    }
  }

  @Test
  void theLoadBalanceIsInTheLossWithItsWeight() throws OrtException {
    Map<String, Object> options = Map.of("experts", 4, "rank", 2, "router", "top_k", "topK", 1);
    double withoutAux;
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, mixture("", withWeight(options, 0.0)))) {
      withoutAux = c.loss(Map.of());
    }
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, mixture("", withWeight(options, 0.25)))) {
      List<String> aux = c.graft.manifest().getAuxiliaryLossesList();
      Map<String, double[]> out = c.run(Map.of(), Set.copyOf(aux));
      double sum = aux.stream().mapToDouble(a -> out.get(a)[0]).sum();
      assertEquals(withoutAux + 0.25 * sum, c.loss(Map.of()), 1e-12);
    }
  }

  private static Map<String, Object> withWeight(Map<String, Object> options, double weight) {
    Map<String, Object> m = new java.util.HashMap<>(options);
    m.put("auxLossWeight", weight);
    return m;
  }

  @Test
  void perLayerExpertCountsWholeStepMatchesCentralDifferences() throws OrtException {
    AdapterSpec adapter = mixture(".*(self/query|\\d/output/dense)/MatMul",
        Map.of("expertsPerLayer", List.of(2, 4), "rank", 2, "router", "top_k", "topK", 2));
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      Manifest m = c.graft.manifest();
      assertEquals(List.of(8L, 2L), shape(m, "encoder.layer.0.attention.self.query.mixture_lora.router"));
      assertEquals(List.of(8L, 4L), shape(m, "encoder.layer.1.attention.self.query.mixture_lora.router"));
      assertEquals(List.of(16L, 8L), shape(m, "encoder.layer.1.output.dense.mixture_lora.lora_A"), "4 experts × rank 2");
      // Layer 0 keeps both of its 2 experts (soft gates, no load balance); layer 1 routes top-2 of 4.
      assertEquals(List.of("encoder.layer.1.attention.self.query.mixture_lora.router.load_balance",
          "encoder.layer.1.output.dense.mixture_lora.router.load_balance"), m.getAuxiliaryLossesList());
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("mixture experts per layer [2, 4]: max FD error %.3g%n", worst);
    }
    check(mixture("", Map.of("expertsPerLayer", List.of(3, 2), "rank", 1)));
  }

  private static List<Long> shape(Manifest m, String name) {
    return m.getParametersList().stream().filter(p -> p.getName().equals(name)).findFirst()
        .orElseThrow(() -> new AssertionError("no parameter " + name)).getShapeList();
  }

  /**
   * Seeded values per site and factor, the same for LoRA's {@code lora_A}/{@code lora_B} and the
   * other kinds' parameters whose names end so.
   */
  private static double[] byRole(Parameter p) {
    double[] v = new double[WholeStepCheck.size(p)];
    String factor = p.getName().endsWith("lora_A") ? "A" : p.getName().endsWith("lora_B") ? "B" : p.getName();
    Random r = new Random((p.getSite() + factor).hashCode());
    for (int i = 0; i < v.length; i++) {
      v[i] = 0.3 * r.nextGaussian();
    }
    return v;
  }

  @Test
  void aSoftMixtureOfOneExpertIsLora() throws OrtException {
    CompiledGraft lora = InferenceRun.compile(HOST, Adapters.lora("", 4, 6));
    CompiledGraft mixture = InferenceRun.compile(HOST, mixture("", Map.of("experts", 1, "rank", 4, "alpha", 6)));
    double[] expected = InferenceRun.logits(HOST, lora, MixtureKindsTest::byRole);
    double[] host = InferenceRun.logits(HOST, InferenceRun.compile(HOST), MixtureKindsTest::byRole);
    double[] actual = InferenceRun.logits(HOST, mixture, MixtureKindsTest::byRole);
    assertArrayEquals(expected, actual, 1e-12);
    assertTrue(Math.abs(expected[0] - host[0]) > 1e-3, "the update matters: " + expected[0] + " vs " + host[0]);
  }

  @Test
  void multiHeadRoutingWithSharedPiecesWholeStepMatchesCentralDifferences() throws OrtException {
    AdapterSpec adapter = Adapters.of("multi_head_routing", ALL_LINEAR, Map.of("pieces", 3, "heads", 2, "rank", 2));
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      Manifest m = c.graft.manifest();
      List<String> shared = m.getParametersList().stream().filter(p -> p.getSiteNode().isEmpty())
          .map(Parameter::getName).filter(n -> n.startsWith("multi_head_routing")).toList();
      assertEquals(List.of("multi_head_routing.8x8.lora_A", "multi_head_routing.8x8.lora_B",
          "multi_head_routing.8x16.lora_A", "multi_head_routing.8x16.lora_B",
          "multi_head_routing.16x8.lora_A", "multi_head_routing.16x8.lora_B"), shared,
          "one inventory per [in, out], shared by 8 square sites and 2 of each other shape");
      assertEquals(List.of(2L, 3L, 4L, 2L), shape(m, "multi_head_routing.8x16.lora_A"));
      assertEquals(List.of(2L, 3L, 2L, 8L), shape(m, "multi_head_routing.8x16.lora_B"));
      assertEquals(List.of(2L, 3L), shape(m, "encoder.layer.1.intermediate.dense.multi_head_routing.logits"));
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("multi-head routing, shared pieces: max FD error %.3g%n", worst);
    }
  }

  @Test
  void multiHeadRoutingWithPiecesPerSiteWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("multi_head_routing", "", Map.of("pieces", 2, "heads", 4, "rank", 3, "sharePieces", false)));
  }

  /** One head over one piece: the softmax weight is 1, and the site's A and B are the piece's. */
  @Test
  void multiHeadRoutingWithOneHeadAndOnePieceIsLora() throws OrtException {
    CompiledGraft lora = InferenceRun.compile(HOST, Adapters.lora(".*/query/MatMul", 2, 4));
    CompiledGraft mhr = InferenceRun.compile(HOST, Adapters.of("multi_head_routing", ".*/query/MatMul",
        Map.of("pieces", 1, "heads", 1, "rank", 2, "alpha", 4, "sharePieces", false)));
    double[] expected = InferenceRun.logits(HOST, lora, MixtureKindsTest::byRole);
    double[] actual = InferenceRun.logits(HOST, mhr, MixtureKindsTest::byRole);
    assertArrayEquals(expected, actual, 1e-12);
  }

  /**
   * MHR with 2 heads over 3 pieces equals LoRA whose A and B are built by plain Java from the
   * pieces: row i of A mixes the pieces' rows of head {@code i / (in/heads)} with {@code
   * softmax(Z_h)}, column o of B the pieces' columns of head {@code o / (out/heads)}.
   */
  @Test
  void multiHeadRoutingBuildsEachHeadsBlockFromThePieces() throws OrtException {
    int heads = 2;
    int pieces = 3;
    int rank = 2;
    int in = 8;
    int out = 8;
    CompiledGraft mhr = InferenceRun.compile(HOST, Adapters.of("multi_head_routing", ".*/query/MatMul",
        Map.of("pieces", pieces, "heads", heads, "rank", rank, "alpha", 4, "sharePieces", false)));
    Map<String, double[]> values = new java.util.HashMap<>();
    mhr.manifest().getParametersList().forEach(p -> values.put(p.getName(), byRole(p)));
    java.util.function.Function<Parameter, double[]> loraValues = p -> {
      if (!p.getName().endsWith("lora_A") && !p.getName().endsWith("lora_B")) {
        return byRole(p);
      }
      String site = p.getSite() + ".multi_head_routing.";
      double[] z = values.get(site + "logits");
      double[][] w = new double[heads][pieces];
      for (int h = 0; h < heads; h++) {
        double sum = 0;
        for (int q = 0; q < pieces; q++) {
          sum += Math.exp(z[h * pieces + q]);
        }
        for (int q = 0; q < pieces; q++) {
          w[h][q] = Math.exp(z[h * pieces + q]) / sum;
        }
      }
      boolean isA = p.getName().endsWith("lora_A");
      double[] piece = values.get(site + (isA ? "lora_A" : "lora_B"));
      double[] v = new double[in * rank];
      if (isA) { // pieces [heads, pieces, in/heads, rank] → A [in, rank]
        for (int i = 0; i < in; i++) {
          int h = i / (in / heads);
          for (int j = 0; j < rank; j++) {
            for (int q = 0; q < pieces; q++) {
              v[i * rank + j] += w[h][q] * piece[((h * pieces + q) * (in / heads) + i % (in / heads)) * rank + j];
            }
          }
        }
      } else { // pieces [heads, pieces, rank, out/heads] → B [rank, out]
        for (int j = 0; j < rank; j++) {
          for (int o = 0; o < out; o++) {
            int h = o / (out / heads);
            for (int q = 0; q < pieces; q++) {
              v[j * out + o] += w[h][q] * piece[((h * pieces + q) * rank + j) * (out / heads) + o % (out / heads)];
            }
          }
        }
      }
      return v;
    };
    double[] expected = InferenceRun.logits(HOST, InferenceRun.compile(HOST, Adapters.lora(".*/query/MatMul", rank, 4)),
        loraValues);
    double[] actual = InferenceRun.logits(HOST, mhr, p -> values.get(p.getName()));
    assertArrayEquals(expected, actual, 1e-12);
  }

  private static List<Diagnostic> errors(AdapterSpec adapter) {
    GraftCompileException e = org.junit.jupiter.api.Assertions.assertThrows(GraftCompileException.class,
        () -> InferenceRun.compile(HOST, adapter));
    return e.diagnostics();
  }

  @Test
  void expertsPerLayerMustHaveOneCountPerSelectedLayer() {
    List<Diagnostic> d = errors(mixture("", Map.of("expertsPerLayer", List.of(2, 2, 4))));
    assertEquals(ErrorCode.MIXTURE_EXPERTS_PER_LAYER_LENGTH, d.get(0).code());
    assertEquals("expertsPerLayer", d.get(0).attribute());
    assertTrue(d.get(0).message().contains("has 3 entries, but the declaration selects 2 layers [0, 1]"), d.get(0).message());
  }

  @Test
  void topKMustNotExceedTheExperts() {
    List<Diagnostic> d = errors(mixture("", Map.of("experts", 2, "router", "top_k", "topK", 3)));
    assertEquals(ErrorCode.MIXTURE_TOP_K_TOO_LARGE, d.get(0).code());
    assertEquals("topK", d.get(0).attribute());
    d = errors(mixture("", Map.of("expertsPerLayer", List.of(4, 2), "router", "top_k", "topK", 3)));
    assertTrue(d.get(0).message().contains("topK 3 exceeds the 2 experts of layer 1; use topK <= 2"), d.get(0).message());
  }

  @Test
  void expertCountsOutOfRangeAreRejected() {
    List<Diagnostic> d = errors(mixture("", Map.of("expertsPerLayer", List.of(2, 0))));
    assertEquals(ErrorCode.OPTION_OUT_OF_RANGE, d.get(0).code());
    assertTrue(d.get(0).message().contains("expertsPerLayer must be a list of integers in 1..256, got 2,0"), d.get(0).message());
  }

  @Test
  void headsMustDivideEverySite() {
    List<Diagnostic> d = errors(Adapters.of("multi_head_routing", "", Map.of("heads", 3)));
    assertEquals(ErrorCode.MULTI_HEAD_ROUTING_HEADS_DO_NOT_DIVIDE, d.get(0).code());
    assertEquals("heads", d.get(0).attribute());
    assertTrue(d.get(0).message().contains("heads 3 must divide"), d.get(0).message());
  }
}
