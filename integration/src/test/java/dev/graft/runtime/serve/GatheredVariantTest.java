package dev.graft.runtime.serve;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.spec.manifest.GatheredRole;
import dev.graft.spec.manifest.GatheredTensor;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * The GATHERED variant as compiled: its interface (the int64 adapter index per row, stacks with
 * symbolic adapters and rank dims, recorded in the manifest), Gemm sites (alpha, transA, transB,
 * 2-D inputs) served as {@code AdapterModel.predict} computes them, and the coded error
 * ({@code GRAFT170}) for grafts whose adapters have no per-row form, naming each of them.
 */
class GatheredVariantTest {
  @TempDir Path dir;

  private static Path tiny(Path dir) throws Exception {
    Path host = dir.resolve("tiny.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(7), "tiny").toByteArray());
    return host;
  }

  @Test
  void theGatheredGraphTakesStacksAndAnIndexPerRow() throws Exception {
    CompiledGraft graft = Graft.host(tiny(dir)).name("G").lora("", l -> l.rank(4)).classification(2)
        .compile(GraphVariant.GATHERED);
    assertNotNull(graft.gathered());
    assertEquals("G.gathered", graft.gathered().getGraph().getName());
    Map<String, ValueInfoProto> inputs = new LinkedHashMap<>();
    graft.gathered().getGraph().getInputList().forEach(i -> inputs.put(i.getName(), i));
    ValueInfoProto index = inputs.get("adapter_index");
    assertEquals(TensorType.INT64, index.getType().getTensorType().getElemType());
    assertEquals("batch", index.getType().getTensorType().getShape().getDim(0).getDimParam());
    ValueInfoProto a = inputs.get("gathered/encoder.layer.0.attention.self.query/A");
    var dims = a.getType().getTensorType().getShape().getDimList();
    assertEquals(List.of("adapters", "", "rank.encoder.layer.0.attention.self.query"),
        dims.stream().map(d -> d.getDimParam()).toList());
    assertEquals(TinyBertHost.HIDDEN, dims.get(1).getDimValue());
    var manifest = graft.manifest().getGathered();
    assertEquals("G.gathered.onnx", manifest.getGraph());
    // 2 layers × (query, value) × (A, B), then the head's weight and bias.
    assertEquals(10, manifest.getTensorsCount());
    GatheredTensor b = manifest.getTensors(1);
    assertEquals(GatheredRole.FACTOR_B, b.getRole());
    assertEquals("update/encoder.layer.0.attention.self.query/B", b.getSource());
    assertTrue(graft.update().getGraph().getOutputList().stream().anyMatch(o -> o.getName().equals(b.getSource())));
    assertEquals(List.of(0L, (long) TinyBertHost.HIDDEN), b.getShapeList());
    assertEquals(GatheredRole.HEAD, manifest.getTensors(8).getRole());
    assertEquals("classifier.weight", manifest.getTensors(8).getSource());
    assertEquals(List.of("adapter_index", "gathered/classifier.weight", "gathered/classifier.bias"),
        inputs.keySet().stream().filter(n -> !n.contains("/A") && !n.contains("/B") && !n.endsWith("_ids")
            && !n.equals("attention_mask")).toList());
    // Without asking, no gathered graph.
    assertNull(Graft.host(tiny(dir)).lora("", l -> l.rank(4)).classification(2).compile().gathered());
  }

  /**
   * x [batch, 6] (mean of embeddings) → Gemm(alpha 0.5, transB=1, bias) → Relu → Transpose → Gemm(transA=1,
   * alpha 2) → [batch, 1, 5] as the pooled head's host output.
   */
  @Test
  void gemmSitesAreServedAsPredictComputesThem() throws Exception {
    Random r = new Random(3);
    Graph g = new Graph();
    g.addInput("input_ids", TensorType.of(TensorType.INT64, List.of(Dim.symbol("batch"), Dim.symbol("sequence"))));
    String e = g.op("/embeddings/Gather", "Gather", List.of(weight(g, r, "embeddings.weight", 20, 6), "input_ids"));
    String x = g.op("/embeddings/ReduceMean", "ReduceMean", List.of(e), attr("axes", List.of(1L)), attr("keepdims", 0L));
    String h = g.op("/encoder/layer.0/fc/Gemm", "Gemm", List.of(x, weight(g, r, "fc.weight", 7, 6),
        weight(g, r, "fc.bias", 7)), attr("transB", 1L), attr("alpha", 0.5f));
    String t = g.op("/encoder/layer.0/Transpose", "Transpose",
        List.of(g.op("/encoder/layer.0/Relu", "Relu", List.of(h))), attr("perm", List.of(1L, 0L)));
    String o = g.op("/encoder/layer.1/out/Gemm", "Gemm", List.of(t, weight(g, r, "out.weight", 7, 5)),
        attr("transA", 1L), attr("alpha", 2f));
    g.opTo("last_hidden_state", "/Unsqueeze", "Unsqueeze", List.of(o, g.longs("/axes", List.of(1L))));
    g.outputs().add("last_hidden_state");
    ShapeInference.run(g);
    Path host = dir.resolve("gemm.onnx");
    Files.write(host, OnnxExport.write(g, "gemm").toByteArray());
    CompiledGraft graft = Graft.host(host).name("Gemm").lora(".*/Gemm", l -> l.rank(3)).classification(3)
        .compile(GraphVariant.GATHERED);
    Map<String, long[][]> in = Map.of("input_ids", new long[][] {{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 19}});
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withTraining(false));
        AdapterServer server = AdapterServer.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      List<float[][]> expected = new ArrayList<>();
      for (int a = 0; a < 2; a++) {
        Map<String, float[]> v = new LinkedHashMap<>();
        for (var p : model.getParameters()) {
          float[] values = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (m, n) -> m * n)];
          for (int i = 0; i < values.length; i++) {
            values[i] = (float) (0.3 * r.nextGaussian());
          }
          v.put(p.getName(), values);
        }
        v.forEach(model::setParameter);
        expected.add(model.predict(in));
        server.register("g" + a, v);
      }
      List<float[][]> out = server.predict(List.of(new AdapterServer.Request("g1", in), new AdapterServer.Request("g0", in)));
      double worst = 0;
      double scale = 1;
      for (int a = 0; a < 2; a++) {
        float[][] want = expected.get(1 - a);
        for (int i = 0; i < want.length; i++) {
          for (int j = 0; j < want[i].length; j++) {
            worst = Math.max(worst, Math.abs(want[i][j] - out.get(a)[i][j]));
            scale = Math.max(scale, Math.abs(want[i][j]));
          }
        }
      }
      // float32, summed in another order: |difference| ≤ 1e-5 · max(1, max |logit|).
      assertTrue(worst <= 1e-5 * scale, "max |difference| " + worst + " at scale " + scale);
      System.out.printf("GatheredVariantTest Gemm sites (alpha, transA, transB): max |difference| %.3g at scale %.3g%n",
          worst, scale);
    }
  }

  /** A head alone (no adapter, no update graph needed): each row gets its adapter's own head. */
  @Test
  void aHeadAloneIsGatheredPerRow() throws Exception {
    Path host = tiny(dir);
    CompiledGraft graft = Graft.host(host).name("Probe").classification(2).compile(GraphVariant.GATHERED);
    assertEquals(2, graft.manifest().getGathered().getTensorsCount());
    Map<String, long[][]> in = Map.of("input_ids", new long[][] {{1, 2, 3}, {4, 5, 6}},
        "attention_mask", new long[][] {{1, 1, 1}, {1, 1, 0}}, "token_type_ids", new long[2][3]);
    Random r = new Random(5);
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withTraining(false));
        AdapterServer server = AdapterServer.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      List<float[][]> expected = new ArrayList<>();
      for (int a = 0; a < 2; a++) {
        Map<String, float[]> v = new LinkedHashMap<>();
        for (var p : model.getParameters()) {
          float[] values = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (m, n) -> m * n)];
          for (int i = 0; i < values.length; i++) {
            values[i] = (float) r.nextGaussian();
          }
          v.put(p.getName(), values);
        }
        v.forEach(model::setParameter);
        expected.add(model.predict(in));
        server.register("h" + a, v);
      }
      List<float[][]> out = server.predict(List.of(new AdapterServer.Request("h1", in), new AdapterServer.Request("h0", in)));
      for (int a = 0; a < 2; a++) {
        for (int i = 0; i < 2; i++) {
          for (int j = 0; j < 2; j++) {
            assertEquals(expected.get(1 - a)[i][j], out.get(a)[i][j], 1e-5);
          }
        }
      }
      assertTrue(Math.abs(expected.get(0)[0][0] - expected.get(1)[0][0]) > 1e-3, "the heads differ");
    }
  }

  private static String weight(Graph g, Random r, String name, long... dims) {
    int n = 1;
    List<Long> shape = new ArrayList<>();
    for (long d : dims) {
      n *= (int) d;
      shape.add(d);
    }
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = 0.5 * r.nextGaussian();
    }
    g.addInitializer(Tensors.floats(name, TensorType.FLOAT, shape, v), false);
    return name;
  }

  private static String refused(Executable compile) {
    GraftCompileException e = org.junit.jupiter.api.Assertions.assertThrows(GraftCompileException.class, compile);
    assertEquals(ErrorCode.GATHERED_UNSUPPORTED, e.diagnostics().get(0).code());
    String m = e.getMessage();
    assertTrue(m.startsWith("[GRAFT170] "), m);
    return m;
  }

  @Test
  void adaptersWithoutAPerRowFormAreNamed() throws Exception {
    Path host = tiny(dir);
    String bottleneck = refused(() -> Graft.host(host).name("B").lora("", l -> l.rank(4))
        .bottleneck("", o -> o.reduction(2)).classification(2).compile(GraphVariant.GATHERED));
    assertTrue(bottleneck.contains("Bottleneck adapter on ''") && bottleneck.contains("not a change of the layer's weight")
        && !bottleneck.contains("LoRA"), bottleneck);
    String bitFit = refused(() -> Graft.host(host).name("F").bitFit().classification(2).compile(GraphVariant.GATHERED));
    assertTrue(bitFit.contains("BitFit") && bitFit.contains("not a change of the layer's weight"), bitFit);
    String composed = refused(() -> Graft.host(host).name("C")
        .lora(".*query/MatMul", o -> o.name("x").rank(2)).lora(".*query/MatMul", o -> o.name("y").rank(2))
        .compose(Graft.parallel("x", "y")).classification(2).compile(GraphVariant.GATHERED));
    assertTrue(composed.contains("LoRA 'x' on '.*query/MatMul'") && composed.contains("placed by a composition"),
        composed);
    // The same grafts compile without the gathered graph.
    assertNotNull(Graft.host(host).bitFit().classification(2).compile());
  }
}
