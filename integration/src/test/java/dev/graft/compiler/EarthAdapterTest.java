package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.frequency.PatchFilter;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.dsl.Graft;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import dev.graft.testing.Adapters;
import dev.graft.testing.Feed;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;
import java.io.IOException;
import java.io.InputStream;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Earth-Adapter: the whole training step against central differences on a float64 host whose
 * tokens are a class token and a 3×3 grid (tight), and on the float32 torch-exported ViT fixture
 * (class token + 4×4 patches, as users run it); the filter constants in the compiled graph; the
 * coded errors for a host without a patch grid and a cutoff that leaves no high frequency.
 */
class EarthAdapterTest {
  /**
   * A float64 host {@code tokens [batch, 10, 8]} (a class token and a 3×3 grid) →
   * {@code /layer.0/output/dense/MatMul} + bias, added to {@code tokens} ({@code /layer.0/output/Add},
   * the residual sum) → Tanh → {@code last_hidden_state}.
   */
  private static Graph gridHost() {
    return gridHost(true, false);
  }

  /**
   * {@link #gridHost()}, or without the residual (the biased output goes straight into Tanh), or
   * with a layer scale (DINOv2's: the biased output times a constant vector before the residual Add).
   */
  private static Graph gridHost(boolean residual, boolean layerScale) {
    Graph g = new Graph();
    int d = TensorType.DOUBLE;
    g.addInput("tokens", TensorType.of(d, List.of(Dim.symbol("batch"), Dim.of(10), Dim.of(8))));
    Random r = new Random(5);
    double[] w = new double[64];
    double[] b = new double[8];
    for (int i = 0; i < w.length; i++) {
      w[i] = r.nextGaussian() * 0.4;
    }
    for (int i = 0; i < b.length; i++) {
      b[i] = r.nextGaussian() * 0.1;
    }
    g.addInitializer(Tensors.floats("layer.0.output.dense.weight", d, List.of(8L, 8L), w), false);
    g.addInitializer(Tensors.floats("layer.0.output.dense.bias", d, List.of(8L), b), false);
    String h = g.op("/layer.0/output/dense/MatMul", "MatMul", List.of("tokens", "layer.0.output.dense.weight"));
    String hb = g.op("/layer.0/output/dense/Add", "Add", List.of(h, "layer.0.output.dense.bias"));
    String scaled = hb;
    if (layerScale) {
      g.addInitializer(Tensors.floats("layer.0.ls2.gamma", d, List.of(8L), new double[] {0.5, 1.5, 0.8, 1.2, 0.3, 2, 1, 0.7}),
          false);
      scaled = g.op("/layer.0/ls2/Mul", "Mul", List.of(hb, "layer.0.ls2.gamma"));
    }
    String x = residual ? g.op("/layer.0/output/Add", "Add", List.of(scaled, "tokens")) : hb;
    g.outputs().add(g.opTo("last_hidden_state", "/layer.0/Tanh", "Tanh", List.of(x)));
    ShapeInference.run(g);
    return g;
  }

  private static Feed randomTokens(long seed, int batch) {
    Random r = new Random(seed);
    double[] v = new double[batch * 10 * 8];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian();
    }
    return Feed.reals(v, batch, 10, 8);
  }

  @Test
  void wholeStepMatchesCentralDifferencesOnAFloat64GridHost() throws OrtException {
    // block on the plain residual and through a layer scale (the Add reads the biased output times a
    // constant), output on the plain residual host.
    for (String input : List.of("block", "block (layer scale)", "output")) {
      AdapterSpec earth = Adapters.of("earth", "", Map.of("reduction", 4, "nonlinearity", "tanh", "cutoff", 0.7,
          "input", input.split(" ")[0]));
      Graph host = gridHost(true, input.contains("scale"));
      try (WholeStepCheck c = WholeStepCheck.classification(host, earth)) {
        String siteInput = c.graft.inference().getGraph().getNodeList().stream()
            .filter(n -> n.getName().equals("/layer/0/output/dense/earth_adapter/low/Filter")).findFirst().orElseThrow()
            .getInput(1);
        assertEquals(input.equals("output") ? "/layer.0/output/dense/Add_output_0" : "/layer.0/output/Add_output_0",
            siteInput);
        c.batch.clear();
        c.batch.put("tokens", randomTokens(3, 2));
        c.batch.put("labels", Feed.longs(new long[] {1, 0}, 2));
        List<String> names = c.params.stream().map(p -> p.getName()).toList();
        assertTrue(names.containsAll(List.of("layer.0.output.dense.earth_adapter.spatial.down.weight",
            "layer.0.output.dense.earth_adapter.low.up.weight", "layer.0.output.dense.earth_adapter.high.down.bias",
            "layer.0.output.dense.earth_adapter.router.weight", "layer.0.output.dense.earth_adapter.router.bias")),
            names.toString());
        WholeStepCheck.Result r = c.assertGradientsMatch(WholeStepCheck.Tolerance.of(1e-6, 1e-8, 1e-6).relativeL2(1e-6));
        System.out.printf("earth float64 grid host, input = %s: max abs error %.3e, max relative L2 %.3e%n", input,
            r.maxError(), r.maxRelativeL2());
        assertTrue(r.maxError() < 1e-7, "max error " + r.maxError());
      }
    }
  }

  @Test
  void blockReadsTheResidualSumAndOutputTheLayerOutput() throws Exception {
    // On the torch ViT: the value the adapter's filters read (its site input) is, with block, the
    // host's residual sum /vit/encoder/layer.0/Add_1 (the block's output) and, with output, the
    // feed-forward dense's biased output; both compared with a plain ORT run of the host. The two
    // differ, so reading the wrong one fails.
    JsonObject ref = JsonParser.parseString(new String(resource("vit_opset17.json"), StandardCharsets.UTF_8)).getAsJsonObject();
    ModelProto hostModel = ModelProto.parseFrom(resource("vit_opset17.onnx"));
    Graph host = GraftCompiler.imported(HostModel.of("vit", hostModel));
    double[] pixels = TorchExportHostsTest.doubles(ref.getAsJsonObject("inputs").getAsJsonObject("pixel_values")
        .getAsJsonArray("values"));
    Map<String, double[]> hostValues = run(hostModel, host, pixels, Map.of(),
        List.of("/vit/encoder/layer.0/Add_1_output_0", "/vit/encoder/layer.0/output/dense/Add_output_0"));
    double[] sum = hostValues.get("/vit/encoder/layer.0/Add_1_output_0");
    double[] dense = hostValues.get("/vit/encoder/layer.0/output/dense/Add_output_0");
    assertTrue(maxDifference(sum, dense) > 0.1, "the residual sum and the dense output differ");
    ClassificationSpec task = new ClassificationSpec(3, ClassificationSpec.Pooling.MEAN, "last_hidden_state", null);
    for (String input : List.of("block", "output")) {
      try (WholeStepCheck c = WholeStepCheck.of(host, task,
          Adapters.of("earth", "", Map.of("reduction", 8, "cutoff", 0.5, "input", input)))) {
        c.randomize(11, p -> 0, p -> 0.2);
        ModelProto adapted = c.graft.inference();
        String siteInput = adapted.getGraph().getNodeList().stream()
            .filter(n -> n.getName().equals("/vit/encoder/layer/0/output/dense/earth_adapter/low/Filter"))
            .findFirst().orElseThrow().getInput(1);
        double[] got = run(adapted, host, pixels, c.values, List.of(siteInput)).get(siteInput);
        double[] want = input.equals("block") ? sum : dense;
        System.out.printf("earth input = %s: site input vs the host's %s, largest difference %.3g%n", input,
            input.equals("block") ? "residual sum" : "dense output", maxDifference(want, got));
        assertEquals(want.length, got.length);
        assertTrue(maxDifference(want, got) < 1e-5, input + ": " + maxDifference(want, got));
      }
    }
  }

  /**
   * Runs {@code model} (its external host weights inlined from {@code host}) in ORT on {@code pixels}
   * [2, 3, 16, 16] and float32 {@code parameters}, returning {@code values} (float32) as graph outputs.
   */
  private static Map<String, double[]> run(ModelProto model, Graph host, double[] pixels,
      Map<String, double[]> parameters, List<String> values) throws OrtException {
    ModelProto.Builder b = model.toBuilder();
    var graph = b.getGraphBuilder();
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      TensorProto t = graph.getInitializer(i);
      if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        graph.setInitializer(i, host.initializers().get(t.getName()));
      }
    }
    for (String v : values) {
      graph.addOutput(ValueInfoProto.newBuilder().setName(v).setType(TypeProto.newBuilder()
          .setTensorType(TypeProto.Tensor.newBuilder().setElemType(TensorType.FLOAT))));
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> feed = new HashMap<>();
    try (OrtSession s = env.createSession(b.build().toByteArray(), new OrtSession.SessionOptions())) {
      for (Map.Entry<String, NodeInfo> e : s.getInputInfo().entrySet()) {
        long[] shape = ((TensorInfo) e.getValue().getInfo()).getShape();
        double[] v = e.getKey().equals("pixel_values") ? pixels : parameters.get(e.getKey());
        assertNotNull(v, "no value for input " + e.getKey());
        if (e.getKey().equals("pixel_values")) {
          shape = new long[] {2, 3, 16, 16};
        }
        feed.put(e.getKey(), OnnxTensor.createTensor(env, FloatBuffer.wrap(floats(v)), shape));
      }
      Map<String, double[]> out = new HashMap<>();
      try (OrtSession.Result r = s.run(feed, new java.util.HashSet<>(values))) {
        for (String v : values) {
          FloatBuffer f = ((OnnxTensor) r.get(v).orElseThrow()).getFloatBuffer();
          double[] d = new double[f.remaining()];
          for (int i = 0; i < d.length; i++) {
            d[i] = f.get(i);
          }
          out.put(v, d);
        }
      }
      return out;
    } finally {
      feed.values().forEach(OnnxTensor::close);
    }
  }

  private static float[] floats(double[] d) {
    float[] f = new float[d.length];
    for (int i = 0; i < d.length; i++) {
      f[i] = (float) d[i];
    }
    return f;
  }

  private static double maxDifference(double[] a, double[] b) {
    double most = 0;
    for (int i = 0; i < Math.min(a.length, b.length); i++) {
      most = Math.max(most, Math.abs(a[i] - b[i]));
    }
    return most;
  }

  @Test
  void theClassTokenIsNotAdapted() throws OrtException {
    // First-token pooling reads only the class token, which the mixture leaves as it is: the logits
    // do not depend on the adapter (as the reference's forward, which splits the class token off);
    // mean pooling reads the patches too, so there they do.
    for (ClassificationSpec.Pooling pooling : List.of(ClassificationSpec.Pooling.FIRST_TOKEN, ClassificationSpec.Pooling.MEAN)) {
      ClassificationSpec task = new ClassificationSpec(2, pooling, "", null);
      try (WholeStepCheck c = WholeStepCheck.of(gridHost(), task, Adapters.of("earth", "", Map.of("cutoff", 0.7)))) {
        c.batch.clear();
        c.batch.put("tokens", randomTokens(3, 2));
        c.batch.put("labels", Feed.longs(new long[] {1, 0}, 2));
        double[] adapted = c.randomize(5, p -> 0, p -> 0.5).inference();
        double[] host = c.randomize(5, p -> 0, p -> p.getName().contains(".earth_adapter.") ? 0 : 0.5).inference();
        double most = 0;
        for (int i = 0; i < host.length; i++) {
          most = Math.max(most, Math.abs(adapted[i] - host[i]));
        }
        System.out.printf("earth %s pooling: largest logit change from the adapter %.3g%n", pooling, most);
        if (pooling == ClassificationSpec.Pooling.FIRST_TOKEN) {
          assertEquals(0, most, 1e-15);
        } else {
          assertTrue(most > 1e-3, "mean pooling sees the adapted patches: " + most);
        }
      }
    }
  }

  @Test
  void theCompiledFiltersAreTheDftLowPassAndItsComplement() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(gridHost(), Adapters.of("earth", "", Map.of("cutoff", 0.7)))) {
      var inits = c.graft.inference().getGraph().getInitializerList();
      TensorProto low = inits.stream().filter(t -> t.getName().contains("earth_adapter/low_pass")).findFirst().orElseThrow();
      TensorProto high = inits.stream().filter(t -> t.getName().contains("earth_adapter/high_pass")).findFirst().orElseThrow();
      assertEquals(List.of(10L, 10L), low.getDimsList());
      double[] want = new PatchFilter(1, 3, 3).tokenMatrix(0.7, "box", false);
      double[] got = Tensors.readDoubles(low);
      double[] gotHigh = Tensors.readDoubles(high);
      for (int i = 0; i < want.length; i++) {
        assertEquals(want[i], got[i], 1e-15, "low[" + i + "]");
        int row = i / 10;
        int col = i % 10;
        double identity = row == col ? 1 : 0;
        assertEquals(row == 0 ? identity : identity - want[i], gotHigh[i], 1e-15, "high[" + i + "]");
      }
    }
  }

  @Test
  void wholeStepOnTheTorchVitMatchesCentralDifferencesInFloat32() throws Exception {
    JsonObject ref = JsonParser.parseString(new String(resource("vit_opset17.json"), StandardCharsets.UTF_8)).getAsJsonObject();
    Graph host = GraftCompiler.imported(HostModel.of("vit", ModelProto.parseFrom(resource("vit_opset17.onnx"))));
    ClassificationSpec task = new ClassificationSpec(3, ClassificationSpec.Pooling.MEAN, "last_hidden_state", null);
    // Float32 differences at h = 5e-3. With output (ReLU, the default): the high part's down projection
    // has the smallest gradient (|grad| ≈ 0.006), where they leave about 2.5% relative L2; every element
    // stays within 2e-3 + 5%. With block the experts read the residual stream, whose larger values put
    // ReLU kinks within h of the step (7.6e-4 largest error even at h = 1e-3), so block is checked with
    // tanh: largest error 3.0e-5, relative L2 1.6e-2.
    record Case(String input, String nonlinearity, WholeStepCheck.Tolerance tolerance) {}
    for (Case k : List.of(new Case("block", "tanh", WholeStepCheck.Tolerance.of(5e-3, 2e-4, 5e-2).relativeL2(3e-2)),
        new Case("output", "relu", WholeStepCheck.Tolerance.of(5e-3, 2e-3, 5e-2).relativeL2(4e-2)))) {
      try (WholeStepCheck c = WholeStepCheck.of(host, task, Adapters.of("earth", "", Map.of("reduction", 8, "cutoff", 0.5,
          "input", k.input(), "nonlinearity", k.nonlinearity())))) {
        c.randomize(11, p -> 0, p -> 0.2);
        JsonObject pixels = ref.getAsJsonObject("inputs").getAsJsonObject("pixel_values");
        c.batch.clear();
        c.batch.put("pixel_values", Feed.reals(TorchExportHostsTest.doubles(pixels.getAsJsonArray("values")), 2, 3, 16, 16));
        c.batch.put("labels", Feed.longs(new long[] {2, 0}, 2));
        assertEquals(2 * (3 * (32 * 4 + 4 + 4 * 32 + 32) + 32 * 3 + 3) + 32 * 3 + 3, c.params.stream()
            .mapToInt(WholeStepCheck::size).sum(), "two layers of three 32→4→32 bottlenecks and a router, and the head");
        WholeStepCheck.Result r = c.assertGradientsMatch(k.tolerance());
        System.out.printf("earth float32 ViT, input = %s, %s: max abs error %.3e, max relative L2 %.3e%n", k.input(),
            k.nonlinearity(), r.maxError(), r.maxRelativeL2());
      }
    }
  }

  @Test
  void aHostWithoutAPatchGridAndACutoffKeepingEverythingAreCodedErrors() {
    // Tiny BERT's value [batch, sequence, 8] has no static token count.
    GraftCompileException noGrid = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(3)).earthAdapter("", o -> {}).classification(2).compile());
    Diagnostic d = noGrid.diagnostics().get(0);
    assertEquals(ErrorCode.EARTH_NO_PATCH_GRID, d.code());
    assertTrue(d.message().startsWith("[GRAFT360] Earth-Adapter at /encoder/layer.0/output/dense/MatMul: the value"), d.message());

    // 10 tokens without a class token are no square grid.
    GraftCompileException noExtra = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.set("extraTokens", 0)).classification(2)
            .compile());
    assertTrue(noExtra.diagnostics().get(0).message().contains("(asked for grid ?×? after 0 extra tokens)"),
        noExtra.diagnostics().get(0).message());
    // A 2×5 grid after no extra token fits.
    assertTrue(Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.set("extraTokens", 0).set("gridHeight", 2)
        .set("cutoff", 1.0))
        .classification(2).compile().manifest().getParametersCount() > 0);

    GraftCompileException all = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.set("cutoff", 1.0).set("mask", "radial"))
            .classification(2).compile());
    assertEquals(ErrorCode.EARTH_CUTOFF_KEEPS_ALL, all.diagnostics().get(0).code());
    assertEquals("[GRAFT361] Earth-Adapter cutoff 1.0 (radial mask) keeps every frequency of the 3×3 patch grid, so the"
        + " high-frequency part is zero and its adapter would never train; use a cutoff below 0.9428",
        all.diagnostics().get(0).message());
    GraftCompileException allBox = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.set("cutoff", 1.4)).classification(2).compile());
    assertEquals("[GRAFT361] Earth-Adapter cutoff 1.4 (box mask) keeps every frequency of the 3×3 patch grid, so the"
        + " high-frequency part is zero and its adapter would never train; use a cutoff below 1.333",
        allBox.diagnostics().get(0).message());
    assertTrue(Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.set("cutoff", 1.3)).classification(2)
        .compile().manifest().getParametersCount() > 0, "c = 1 leaves the high part");

    // The reference's default cutoff 0.3 on a 3×3 grid: c = ⌊3·0.3/2⌋ = 0, no low frequency at all.
    GraftCompileException none = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> {}).classification(2).compile());
    assertEquals(ErrorCode.EARTH_BOX_KEEPS_NONE, none.diagnostics().get(0).code());
    assertEquals("[GRAFT390] Earth-Adapter cutoff 0.3 (box mask) keeps no frequency of the 3×3 patch grid (c = ⌊min(h, w)"
        + "·cutoff / 2⌋ = 0), so the low-frequency part is zero and its adapter would never train; use a cutoff of"
        + " at least 0.6667", none.diagnostics().get(0).message());
  }

  @Test
  void blockWithoutOneResidualSumAndBlockInACompositionAreCodedErrors() {
    GraftCompileException none = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(gridHost(false, false))).earthAdapter("", o -> o.cutoff(0.7)).classification(2).compile());
    assertEquals(ErrorCode.EARTH_NO_RESIDUAL, none.diagnostics().get(0).code());
    assertEquals("[GRAFT362] Earth-Adapter at /layer.0/output/dense/MatMul with input = block: its output"
        + " '/layer.0/output/dense/Add_output_0' is not added to exactly one residual (an Add of it and a computed value"
        + " of the same shape, whose sum the adapter reads and replaces); found 0 residual sums among its readers"
        + " [/layer.0/Tanh (Tanh)]; target the linear layer whose output the block adds to its residual stream, or use"
        + " input = output", none.diagnostics().get(0).message());
    // The same host with input = output compiles.
    assertTrue(Graft.host(TinyBertHost.host(gridHost(false, false))).earthAdapter("", o -> o.cutoff(0.7).input("output"))
        .classification(2).compile().manifest().getParametersCount() > 0);

    GraftCompileException composed = assertThrows(GraftCompileException.class,
        () -> Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.cutoff(0.7).name("earth"))
            .adapter("bottleneck", "/layer.0/output/dense/MatMul", o -> o.name("seq"))
            .compose(Graft.stack("earth", "seq")).classification(2).compile());
    Diagnostic d = composed.diagnostics().get(0);
    assertEquals(ErrorCode.COMPOSITION_NOT_COMPOSABLE, d.code());
    assertTrue(d.message().contains("'earth' is Earth-Adapter with input = block, which reads and replaces the residual"
        + " sum its target's output joins, not that output; give it input = output to compose it"), d.message());
    // With input = output it composes.
    assertTrue(Graft.host(TinyBertHost.host(gridHost())).earthAdapter("", o -> o.cutoff(0.7).name("earth").input("output"))
        .adapter("bottleneck", "/layer.0/output/dense/MatMul", o -> o.name("seq"))
        .compose(Graft.stack("earth", "seq")).classification(2).compile().manifest().getParametersCount() > 0);
  }

  private static byte[] resource(String file) throws IOException {
    try (InputStream in = EarthAdapterTest.class.getResourceAsStream("/hosts/torch/" + file)) {
      assertNotNull(in, file);
      return in.readAllBytes();
    }
  }
}
