package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.InferenceRun;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.kinds.SpanSite;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Sequential bottleneck, parallel adapter and Hydra: whole training steps against central
 * differences on the float64 tiny BERT, the identity at their default init, default sites, saved
 * names and errors.
 */
class BottleneckKindsTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);

  private static double check(dev.graft.compiler.spec.AdapterSpec adapter) throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, adapter)) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("%s %s: max FD error %.3g%n", adapter.kind(), adapter.options(), worst);
      return worst;
    }
  }

  @Test
  void bottleneckHoulsbySitesWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("bottleneck", "", Map.of("config", "houlsby", "reduction", 2, "nonlinearity", "swish")));
  }

  @Test
  void bottleneckWithoutResidualWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("bottleneck", "", Map.of("reduction", 4, "nonlinearity", "tanh", "residual", false)));
  }

  @Test
  void bottleneckReluWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("bottleneck", ".*/attention/output/dense/MatMul", Map.of("reduction", 2)));
  }

  @Test
  void parallelAdapterWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("parallel", "", Map.of("nonlinearity", "tanh", "scaling", 2.5)));
  }

  @Test
  void hydraWholeStepMatchesCentralDifferences() throws OrtException {
    check(Adapters.of("hydra", "", Map.of("reduction", 4, "scaling", 0.5)));
    check(Adapters.of("hydra", "", Map.of("reduction", 2, "nonlinearity", "swish")));
  }

  /** ONNX Runtime has no float64 Erf: gelu is checked in float32, with tolerances to match. */
  @Test
  void geluWholeStepMatchesCentralDifferencesInFloat32() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11),
        Adapters.of("parallel", "", Map.of("nonlinearity", "gelu", "scaling", 1)))) {
      double worst = c.assertGradientsMatch(1e-2, 2e-4, 2e-2);
      assertTrue(worst < 2e-3, "max error " + worst);
      System.out.printf("parallel gelu float32: max FD error %.3g%n", worst);
    }
  }

  /** Seeded values per parameter as its init draws them (zero stays zero), host copies as the host's. */
  static double[] initLike(Parameter p) {
    double[] v = new double[WholeStepCheck.size(p)];
    Random r = new Random(p.getName().hashCode());
    for (int i = 0; i < v.length; i++) {
      v[i] = switch (p.getInit()) {
        case ZEROS -> 0;
        case KAIMING_UNIFORM -> (2 * r.nextDouble() - 1) / Math.sqrt(p.getInitScale());
        case NORMAL -> r.nextGaussian() * p.getInitScale();
        case HOST_COPY -> InferenceRun.hostValues(HOST, p.getInitSource())[i];
        default -> throw new IllegalArgumentException(p.getInit().toString());
      };
    }
    return v;
  }

  @Test
  void atTheirDefaultInitTheAdaptersLeaveTheHostOutputExactlyUnchanged() throws OrtException {
    double[] host = InferenceRun.logits(HOST, InferenceRun.compile(HOST), BottleneckKindsTest::initLike);
    for (var adapter : List.of(
        Adapters.of("bottleneck", "", Map.of("config", "houlsby", "reduction", 2)),
        Adapters.of("parallel", "", Map.of()),
        Adapters.of("hydra", "", Map.of("reduction", 2, "nonlinearity", "tanh")))) {
      CompiledGraft graft = InferenceRun.compile(HOST, adapter);
      assertTrue(graft.manifest().getParametersList().stream().anyMatch(p -> p.getInit() == Init.KAIMING_UNIFORM));
      assertArrayEquals(host, InferenceRun.logits(HOST, graft, BottleneckKindsTest::initLike), 0.0, adapter.kind());
    }
  }

  @Test
  void houlsbyInitChangesTheOutputOnlyAsMuchAsItsSmallWeightsImply() throws OrtException {
    double[] host = InferenceRun.logits(HOST, InferenceRun.compile(HOST), BottleneckKindsTest::initLike);
    CompiledGraft graft = InferenceRun.compile(HOST,
        Adapters.of("bottleneck", "", Map.of("reduction", 2, "initWeights", "houlsby", "nonlinearity", "tanh")));
    double[] adapted = InferenceRun.logits(HOST, graft, BottleneckKindsTest::initLike);
    // Each adapter adds up·tanh(down·h) with |down|, |up| ~ 0.01 and |h| ~ 1 over 8 → 4 → 8 units:
    // about 8 · 4 · 0.01 · 0.01 ≈ 3e-3 per unit before the following LayerNorm, far below 1e-1.
    double maxDiff = 0;
    for (int i = 0; i < host.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(host[i] - adapted[i]));
    }
    assertTrue(maxDiff > 0 && maxDiff < 1e-2, "logits moved by " + maxDiff);
  }

  @Test
  void defaultSitesFollowConfigAndSpansFindTheFeedForwardBlock() {
    Manifest pfeiffer = Graft.host(TinyBertHost.host(3)).bottleneck().classification(2).compile().manifest();
    assertEquals(List.of("encoder.layer.0.output.dense", "encoder.layer.1.output.dense"),
        pfeiffer.getAdapters(0).getSitesList());
    assertEquals(Map.of("config", "pfeiffer", "reduction", "16", "nonlinearity", "relu", "residual", "true",
        "initWeights", "mam_adapter"), pfeiffer.getAdapters(0).getOptionsMap());
    assertEquals(List.of(8L, 1L), pfeiffer.getParameters(0).getShapeList(), "8 / 16 units: at least 1");
    Manifest houlsby = Graft.host(TinyBertHost.host(3)).bottleneck("", b -> b.config("houlsby").reduction(4))
        .classification(2).compile().manifest();
    assertEquals(List.of("encoder.layer.0.attention.output.dense", "encoder.layer.0.output.dense",
        "encoder.layer.1.attention.output.dense", "encoder.layer.1.output.dense"), houlsby.getAdapters(0).getSitesList());
    Parameter down = houlsby.getParameters(0);
    assertEquals("encoder.layer.0.attention.output.dense.adapter.down.weight", down.getName());
    assertEquals(List.of(8L, 2L), down.getShapeList());
    assertEquals("base_model.model.encoder.layer.0.attention.output.dense.adapters.default.adapter_down.0.weight",
        down.getSaveKey());
    assertEquals(List.of(2L, 8L), down.getSaveShapeList());
    assertTrue(down.getSaveTransposed());
    Parameter upBias = houlsby.getParameters(3);
    assertEquals("base_model.model.encoder.layer.0.attention.output.dense.adapters.default.adapter_up.bias",
        upBias.getSaveKey());
    assertTrue(upBias.getNoDecay());
    JsonObject config = JsonParser.parseString(houlsby.getAdapterConfig()).getAsJsonObject();
    assertEquals("GRAFT", config.get("peft_type").getAsString());
    assertEquals("bottleneck", config.getAsJsonArray("graft_adapters").get(0).getAsJsonObject().get("kind").getAsString());

    Graph g = TinyBertHost.graph(3);
    List<SpanSite> spans = SpanSite.find(g);
    assertEquals(2, spans.size());
    Node intermediate = g.nodes().stream().filter(n -> n.name().equals("/encoder/layer.1/intermediate/dense/MatMul"))
        .findFirst().orElseThrow();
    Node outputBias = g.nodes().stream().filter(n -> n.name().equals("/encoder/layer.1/output/dense/Add"))
        .findFirst().orElseThrow();
    assertEquals(new SpanSite("/encoder/layer.1/output/dense/MatMul", "encoder.layer.1.output",
        java.util.OptionalInt.of(1), intermediate.input(0), outputBias.output(0), 8, 8), spans.get(1));

    Manifest hydra = Graft.host(TinyBertHost.host(3)).hydra("", h -> h.reduction(4).layers(1)).classification(2)
        .compile().manifest();
    assertEquals(List.of("encoder.layer.1.output"), hydra.getAdapters(0).getSitesList());
    assertEquals(List.of("encoder.layer.1.output.hydra.parallel.down.weight",
        "encoder.layer.1.output.hydra.parallel.down.bias", "encoder.layer.1.output.hydra.parallel.up.weight",
        "encoder.layer.1.output.hydra.parallel.up.bias", "encoder.layer.1.output.hydra.sequential.down.weight",
        "encoder.layer.1.output.hydra.sequential.down.bias", "encoder.layer.1.output.hydra.sequential.up.weight",
        "encoder.layer.1.output.hydra.sequential.up.bias"),
        hydra.getParametersList().subList(0, 8).stream().map(Parameter::getName).toList());
    assertEquals("base_model.model.encoder.layer.1.output.hydra.default.sequential.adapter_up.weight",
        hydra.getParameters(6).getSaveKey());
  }

  @Test
  void aBottleneckAndLoraOnTheSameLayerComposeInEitherOrder() throws OrtException {
    var lora = Adapters.lora(".*/output/dense/MatMul", 2, 4);
    var bottleneck = Adapters.of("bottleneck", "", Map.of("reduction", 2, "initWeights", "bert"));
    java.util.function.Function<Parameter, double[]> values = p -> {
      double[] v = new double[WholeStepCheck.size(p)];
      Random pr = new Random(p.getName().hashCode());
      for (int i = 0; i < v.length; i++) {
        v[i] = 0.3 * pr.nextGaussian();
      }
      return v;
    };
    double[] first = InferenceRun.logits(HOST, InferenceRun.compile(HOST, lora, bottleneck), values);
    double[] second = InferenceRun.logits(HOST, InferenceRun.compile(HOST, bottleneck, lora), values);
    assertArrayEquals(first, second, 1e-12);
    double[] noLora = InferenceRun.logits(HOST, InferenceRun.compile(HOST, bottleneck), values);
    assertTrue(Math.abs(noLora[0] - first[0]) > 1e-6, "LoRA takes part");
  }

  @Test
  void spanlessHostsAndBadOptionsAreClearErrors() {
    Graph g = new Graph();
    List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
    g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
    g.addInitializer(Tensors.floats("emb", TensorType.FLOAT, List.of(20L, 8L), new double[160]), false);
    g.addInitializer(Tensors.floats("layer.0.dense.weight", TensorType.FLOAT, List.of(8L, 8L), new double[64]), false);
    String e = g.op("/embeddings/Gather", "Gather", List.of("emb", "input_ids"));
    String h = g.op("/layer.0/dense/MatMul", "MatMul", List.of(e, "layer.0.dense.weight"));
    g.outputs().add(g.opTo("last_hidden_state", "/layer.0/Tanh", "Tanh", List.of(h)));
    ShapeInference.run(g);
    GraftCompileException spanless = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(g)).parallelAdapter().classification(2).compile());
    Diagnostic d = spanless.diagnostics().get(0);
    assertEquals(ErrorCode.SITE_NOT_FOUND, d.code());
    assertTrue(d.message().contains("[GRAFT060] cannot place Parallel adapter on tiny: found no feed-forward block"),
        d.message());

    GraftCompileException zero = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(3)).bottleneck("", b -> b.reduction(0)).classification(2).compile());
    assertTrue(zero.diagnostics().get(0).message().contains("[GRAFT012] Bottleneck adapter reduction must be in 1..65536, got 0"),
        zero.diagnostics().get(0).message());
    GraftCompileException choice = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(3)).bottleneck("", b -> b.nonlinearity("identity")).classification(2).compile());
    assertTrue(choice.diagnostics().get(0).message().contains(
        "Bottleneck adapter nonlinearity must be one of [relu, gelu, tanh, swish], got identity"),
        choice.diagnostics().get(0).message());
    GraftCompileException overlap = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(3)).parallelAdapter().hydra().classification(2).compile());
    assertEquals(ErrorCode.SITES_OVERLAP, overlap.diagnostics().get(0).code());
  }
}
