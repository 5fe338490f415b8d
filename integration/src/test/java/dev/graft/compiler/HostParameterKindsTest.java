package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.InferenceRun;
import dev.graft.testing.MiniLmHost;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.dsl.Graft;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * BitFit, LayerNorm tuning and full tuning: host tensors become parameters initialized from the
 * host. Whole steps against central differences on the float64 tiny BERT (the gradients of the
 * host tensors themselves), exactly the host's output at init, names, keys and errors.
 */
class HostParameterKindsTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);

  private static void check(AdapterSpec adapter) throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("%s: max FD error %.3g%n", adapter.kind(), worst);
    }
  }

  /**
   * Key biases are left out: their gradient is exactly zero (a key bias adds {@code q·b} to a
   * whole row of attention scores, which softmax ignores), and the check requires non-zero ones.
   */
  @Test
  void bitFitWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("bitfit", "(?!.*\\.key\\.).*", Map.of()));
  }

  @Test
  void layerNormTuningWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("layernorm", "", Map.of()));
  }

  @Test
  void fullTuningWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("full", ".*/(attention/self/value|output/dense)/MatMul", Map.of()));
  }

  @Test
  void atInitTheHostTensorsGiveExactlyTheHostOutput() throws OrtException {
    double[] host = InferenceRun.logits(HOST, InferenceRun.compile(HOST), BottleneckKindsTest::initLike);
    for (AdapterSpec adapter : List.of(Adapters.of("bitfit", "", Map.of()), Adapters.of("layernorm", "", Map.of()),
        Adapters.of("full", ".*/(query|intermediate/dense)/MatMul", Map.of()))) {
      CompiledGraft graft = InferenceRun.compile(HOST, adapter);
      Set<String> initializers = graft.inference().getGraph().getInitializerList().stream()
          .map(TensorProto::getName).collect(Collectors.toSet());
      for (Parameter p : graft.manifest().getParametersList()) {
        if (p.getAdapter() == 1) {
          assertEquals(Init.HOST_COPY, p.getInit());
          assertFalse(initializers.contains(p.getInitSource()), p.getInitSource() + " left the initializers");
          assertTrue(graft.manifest().getHostInitializersList().contains(p.getInitSource()), "the runtime reads it");
        }
      }
      assertArrayEquals(host, InferenceRun.logits(HOST, graft, BottleneckKindsTest::initLike), 0.0, adapter.kind());
      double[] moved = InferenceRun.logits(HOST, graft, p -> {
        double[] v = BottleneckKindsTest.initLike(p);
        if (p.getAdapter() == 1) {
          v[0] += 0.5;
        }
        return v;
      });
      assertTrue(Math.abs(moved[0] - host[0]) > 1e-6, adapter.kind() + " reads the parameters, not the host");
    }
  }

  @Test
  void sitesNamesAndKeys() {
    Manifest bitfit = Graft.host(TinyBertHost.host(3)).bitFit().classification(2).compile().manifest();
    List<String> biases = bitfit.getParametersList().stream().filter(p -> p.getAdapter() == 1)
        .map(Parameter::getName).toList();
    assertEquals(2 * 6 + 1 + 2 * 2, biases.size(), "6 linear biases per layer, 3 LayerNorm biases: " + biases);
    assertEquals(List.of("embeddings.LayerNorm.bias", "encoder.layer.0.attention.self.query.bias"), biases.subList(0, 2));
    Parameter query = bitfit.getParameters(1);
    assertEquals("base_model.model.encoder.layer.0.attention.self.query.bias", query.getSaveKey());
    assertEquals("encoder.layer.0.attention.self.query.bias", query.getInitSource());
    assertTrue(query.getNoDecay());
    assertEquals(List.of(8L), query.getShapeList());

    Manifest ln = Graft.host(TinyBertHost.host(3)).layerNormTuning(".*attention.*", o -> o.layers(1))
        .classification(2).compile().manifest();
    assertEquals(List.of("encoder.layer.1.attention.output.LayerNorm.weight",
        "encoder.layer.1.attention.output.LayerNorm.bias"),
        ln.getParametersList().subList(0, 2).stream().map(Parameter::getName).toList());
    assertEquals(4, ln.getParametersCount(), "two LayerNorm tensors and the head");
    assertTrue(ln.getParameters(0).getNoDecay());

    Manifest full = Graft.host(TinyBertHost.host(3)).trainModules(".*/intermediate/dense/MatMul", o -> o.layers(0))
        .classification(2).compile().manifest();
    Parameter w = full.getParameters(0);
    Parameter b = full.getParameters(1);
    assertEquals("encoder.layer.0.intermediate.dense.weight", w.getName());
    assertEquals(List.of(8L, 16L), w.getShapeList());
    assertEquals("base_model.model.encoder.layer.0.intermediate.dense.weight", w.getSaveKey());
    assertEquals(List.of(16L, 8L), w.getSaveShapeList());
    assertTrue(w.getSaveTransposed());
    assertFalse(w.getNoDecay(), "weights decay");
    assertEquals("base_model.model.encoder.layer.0.intermediate.dense.bias", b.getSaveKey());
    assertTrue(b.getNoDecay());
  }

  @Test
  void bitFitAndLayerNormTuningTogetherTrainEachLayerNormBiasOnce() {
    Manifest m = Graft.host(TinyBertHost.host(3)).bitFit().layerNormTuning().classification(2).compile().manifest();
    List<String> names = m.getParametersList().stream().map(Parameter::getName).toList();
    assertEquals(names.size(), Set.copyOf(names).size(), "no parameter twice: " + names);
    assertEquals(17, m.getParametersList().stream().filter(p -> p.getAdapter() == 1).count(), "BitFit: every bias");
    List<String> norms = m.getParametersList().stream().filter(p -> p.getAdapter() == 2).map(Parameter::getName).toList();
    assertEquals(5, norms.size(), "LayerNorm tuning: the 5 weights, BitFit took the biases: " + norms);
    assertTrue(norms.stream().allMatch(n -> n.endsWith("LayerNorm.weight")), norms.toString());
  }

  @Test
  void fullTuningNeedsATarget() {
    GraftCompileException e = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(3)).adapter("full", "", o -> {}).classification(2).compile());
    assertEquals(ErrorCode.ADAPTER_OPTIONS_INVALID, e.diagnostics().get(0).code());
    assertTrue(e.diagnostics().get(0).message().contains("full tuning needs a target naming the linear layers"),
        e.diagnostics().get(0).message());
  }

  @Test
  void miniLmTakesEveryKindWithItsDefaultSites() {
    Map<String, Integer> sites = Map.of("bottleneck", 6, "parallel", 6, "hydra", 6, "bitfit", 36 + 13,
        "layernorm", 26);
    for (var e : new java.util.TreeMap<>(sites).entrySet()) {
      Manifest m = Graft.host(MiniLmHost.get()).adapter(e.getKey(), "", o -> {}).classification(2).compile().manifest();
      assertEquals(e.getValue(), m.getAdapters(0).getSitesCount(), e.getKey() + ": " + m.getAdapters(0).getSitesList());
    }
  }
}
