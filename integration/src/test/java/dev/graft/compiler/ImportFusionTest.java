package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.testing.Feed;
import dev.graft.testing.InferenceRun;
import dev.graft.testing.MiniLmHost;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.TinyGpt2Host;
import dev.graft.testing.TinyLlamaHost;
import dev.graft.testing.WholeStepCheck;
import java.io.InputStream;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The import fusion pass ({@code ImportFusion}, run by {@link GraftCompiler#imported}) on every
 * host fixture (the tiny hosts, the torch-exported GPT-2 and Llama, MiniLM): how many LayerNorms,
 * RMSNorms, erf- and tanh-GELUs it fuses, and that the fused host computes what the
 * unfused one does (both through ONNX Runtime without graph optimizations, on the batch of {@link
 * WholeStepCheck}: |fused − unfused| ≤ 1e-5·max|unfused| + 1e-6 on every output). Gradients
 * through the fused ops are checked by finite differences ({@code TrainStepGradientTest} on the
 * float32 tiny BERT, {@code GradientRulesTest}) and against PyTorch ({@code TorchExportHostsTest}).
 */
class ImportFusionTest {
  static Stream<Arguments> hosts() throws Exception {
    return Stream.of(
        // name, host, LayerNormalization, com.microsoft Gelu, SimplifiedLayerNormalization and
        // com.microsoft FastGelu nodes after fusion
        Arguments.of("tiny BERT float32", TinyBertHost.host(TinyBertHost.graph(3)), 5, 2, 0, 0),
        Arguments.of("tiny BERT float64 (tanh activation)", TinyBertHost.host(TinyBertHost.graph(3, TensorType.DOUBLE)), 5, 0, 0, 0),
        Arguments.of("tiny GPT-2 (tanh-GELU)", HostModel.of("gpt2", OnnxExport.write(TinyGpt2Host.graph(3), "gpt2")), 5, 0, 0, 2),
        Arguments.of("tiny Llama (RMSNorm, SiLU)", HostModel.of("llama", OnnxExport.write(TinyLlamaHost.graph(3), "llama")), 0, 0, 5, 0),
        // opset 17: torch writes LayerNormalization itself
        Arguments.of("torch GPT-2 opset 17", torch("gpt2_opset17"), 0, 0, 0, 2),
        Arguments.of("torch GPT-2 opset 14", torch("gpt2_opset14"), 5, 0, 0, 2),
        Arguments.of("torch Llama opset 17", torch("llama_opset17"), 0, 0, 5, 0),
        Arguments.of("all-MiniLM-L6-v2", MiniLmHost.get(), 13, 6, 0, 0));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("hosts")
  void fusedHostComputesWhatTheUnfusedOneDoes(String name, HostModel host, int layerNorms, int gelus, int rmsNorms,
      int tanhGelus) throws Exception {
    Graph plain = unfused(host);
    Graph fused = GraftCompiler.imported(host);
    assertEquals(layerNorms, count(fused, "", "LayerNormalization") - count(plain, "", "LayerNormalization"),
        name + ": LayerNorms fused");
    assertEquals(gelus, count(fused, Graph.MS_DOMAIN, "Gelu"), name + ": GELUs fused");
    assertEquals(rmsNorms, count(fused, "", "SimplifiedLayerNormalization"), name + ": RMSNorms fused");
    assertEquals(tanhGelus, count(fused, Graph.MS_DOMAIN, "FastGelu"), name + ": tanh-GELUs fused");
    if (layerNorms + gelus + rmsNorms + tanhGelus > 0) {
      assertTrue(fused.nodes().size() < plain.nodes().size(), name + ": fewer nodes");
    }
    Map<String, double[]> expected = InferenceRun.outputs(OnnxExport.write(plain, "plain"), plain, feeds());
    Map<String, double[]> actual = InferenceRun.outputs(OnnxExport.write(fused, "fused"), plain, feeds());
    assertEquals(expected.keySet(), actual.keySet(), name + ": outputs");
    for (String out : expected.keySet()) {
      double[] e = expected.get(out);
      double[] a = actual.get(out);
      assertEquals(e.length, a.length, name + ": size of " + out);
      double scale = 0;
      for (double v : e) {
        scale = Math.max(scale, Math.abs(v));
      }
      double worst = 0;
      for (int i = 0; i < e.length; i++) {
        worst = Math.max(worst, Math.abs(e[i] - a[i]));
      }
      assertTrue(scale > 0, name + ": " + out + " is not all zeros");
      assertTrue(worst <= 1e-5 * scale + 1e-6, name + ": " + out + " differs by " + worst + " (max |value| " + scale + ")");
    }
  }

  @Test
  void aPatternWhoseIntermediateIsReadElsewhereIsLeftAlone() {
    Graph g = TinyBertHost.graph(3);
    // The embeddings LayerNorm's standard deviation becomes a graph output: that LayerNorm stays decomposed.
    String sqrt = g.nodes().stream().filter(n -> n.name().equals("/embeddings/LayerNorm/Sqrt")).findFirst()
        .orElseThrow().output(0);
    g.outputs().add(sqrt);
    Graph fused = GraftCompiler.imported(TinyBertHost.host(g));
    assertEquals(4, count(fused, "", "LayerNormalization"));
    assertTrue(fused.nodes().stream().anyMatch(n -> n.name().equals("/embeddings/LayerNorm/Sqrt")));
    // The fused node keeps the name and output of the pattern's last node (output sites select it by that name).
    Node ln = fused.nodes().stream().filter(n -> n.opType().equals("LayerNormalization")).findFirst().orElseThrow();
    assertEquals("/encoder/layer.0/attention/output/LayerNorm/Add_1", ln.name());
    assertEquals(3, ln.outputs().size());
    Graph plain = unfused(TinyBertHost.host(g));
    assertEquals(plain.nodes().stream().filter(n -> n.name().equals(ln.name())).findFirst().orElseThrow().output(0),
        ln.output(0));
  }

  private static HostModel torch(String name) throws Exception {
    try (InputStream in = ImportFusionTest.class.getResourceAsStream("/hosts/torch/" + name + ".onnx")) {
      return HostModel.of(name, ModelProto.parseFrom(in.readAllBytes()));
    }
  }

  private static Graph unfused(HostModel host) {
    Graph g = OnnxImport.read(host.model());
    g.sortTopologically();
    ShapeInference.run(g);
    return g;
  }

  private static long count(Graph g, String domain, String op) {
    return g.nodes().stream().filter(n -> n.domain().equals(domain) && n.opType().equals(op)).count();
  }

  private static Map<String, Feed> feeds() {
    Map<String, Feed> feeds = new LinkedHashMap<>();
    feeds.put("input_ids", Feed.longs(WholeStepCheck.INPUT_IDS, WholeStepCheck.SHAPE));
    feeds.put("attention_mask", Feed.longs(WholeStepCheck.MASK, WholeStepCheck.SHAPE));
    feeds.put("token_type_ids", Feed.longs(WholeStepCheck.TOKEN_TYPES, WholeStepCheck.SHAPE));
    long[] positions = new long[WholeStepCheck.INPUT_IDS.length];
    for (int i = 0; i < positions.length; i++) {
      positions[i] = i % WholeStepCheck.SHAPE[1];
    }
    feeds.put("position_ids", Feed.longs(positions, WholeStepCheck.SHAPE));
    return feeds;
  }
}
