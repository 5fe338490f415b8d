package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.graft.compiler.ir.FusedOps;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.session.FusedKernels;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.InputStream;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Graft's fused training-graph ops ({@link FusedOps}) on the runtime's native kernels ({@link
 * FusedKernels}) against the ops' own ONNX function bodies (what ONNX Runtime runs without the
 * kernels, each checked by finite differences in the compiler's gradient-rule tests), on inputs
 * that include the extremes; the profile shows which of the two ran; shapes the graphs never
 * produce give NaN, not a wrong value; and MiniLM's training step gives the same losses either way.
 */
class FusedKernelsTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private static boolean linuxX86() {
    String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
    String arch = System.getProperty("os.arch", "");
    return os.startsWith("linux") && (arch.equals("amd64") || arch.equals("x86_64"));
  }

  /**
   * Where the build made them (Linux x86-64 with a C compiler, as on this project's machines), the
   * kernels load and pass their self-check; a machine without a compiler builds none, and only then
   * is this skipped.
   */
  @Test
  void theKernelsLoadOnLinuxX86() {
    assumeTrue(linuxX86(), "the kernels are built for Linux x86-64 only");
    assumeTrue(FusedKernels.class.getResource(FusedKernels.RESOURCE) != null,
        "this build had no C compiler: " + FusedKernels.unavailableReason());
    assertTrue(FusedKernels.available(), FusedKernels.unavailableReason());
    assertEquals("", FusedKernels.unavailableReason());
  }

  private static ValueInfoProto input(String name, long... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (long d : dims) {
      shape.addDim(TensorShapeProto.Dimension.newBuilder().setDimValue(d));
    }
    return ValueInfoProto.newBuilder().setName(name)
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(1).setShape(shape))).build();
  }

  /** One node of fused op {@code op} over {@code inputs}, with the op's function when {@code withFunction}. */
  private static byte[] model(String op, Map<String, long[]> inputs, boolean withFunction) {
    GraphProto.Builder g = GraphProto.newBuilder().setName(op);
    inputs.forEach((name, dims) -> g.addInput(input(name, dims)));
    NodeProto.Builder node = NodeProto.newBuilder().setName(op).setOpType(op).setDomain(Graph.GRAFT_DOMAIN)
        .addAllInput(inputs.keySet()).addAllOutput(outputs(op));
    if (op.equals(FusedOps.LAYER_NORM)) {
      node.addAttribute(Node.attr("epsilon", 1e-3f));
    }
    g.addNode(node);
    for (String out : outputs(op)) {
      g.addOutput(ValueInfoProto.newBuilder().setName(out)
          .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(1))));
    }
    ModelProto.Builder m = ModelProto.newBuilder().setIrVersion(8).setGraph(g)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setVersion(Graph.OPSET))
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(Graph.GRAFT_DOMAIN).setVersion(FusedOps.VERSION));
    if (withFunction) {
      m.addFunctions(FusedOps.function(op));
    }
    return m.build().toByteArray();
  }

  /** The first output, all outputs in order, and the op types the profile saw run. */
  private static List<String> outputs(String op) {
    return op.equals(FusedOps.LAYER_NORM) ? List.of("y", "mean", "inv_std") : List.of("dx");
  }

  private record Run(float[] out, List<float[]> outs, Set<String> ops) {}

  private static Run run(byte[] model, boolean kernels, Map<String, long[]> shapes, Map<String, float[]> values, Path dir)
      throws Exception {
    Path profiles = Files.createTempDirectory(dir, "profile");
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      if (kernels) {
        assertTrue(FusedKernels.register(so));
      }
      so.enableProfiling(profiles.resolve("p").toString());
      Map<String, OnnxTensor> feed = new LinkedHashMap<>();
      try (OrtSession s = ENV.createSession(model, so)) {
        for (var e : shapes.entrySet()) {
          feed.put(e.getKey(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(values.get(e.getKey())), e.getValue()));
        }
        List<float[]> outs = new ArrayList<>();
        try (OrtSession.Result r = s.run(feed)) {
          for (int i = 0; i < r.size(); i++) {
            FloatBuffer b = ((OnnxTensor) r.get(i)).getFloatBuffer();
            float[] out = new float[b.remaining()];
            b.get(out);
            outs.add(out);
          }
        }
        s.endProfiling();
        Set<String> ops = new HashSet<>();
        try (Stream<Path> files = Files.list(profiles)) {
          for (Path trace : files.toList()) {
            for (JsonElement e : JsonParser.parseString(Files.readString(trace)).getAsJsonArray()) {
              var o = e.getAsJsonObject();
              if (o.get("cat").getAsString().equals("Node") && o.has("args") && o.getAsJsonObject("args").has("op_name")) {
                ops.add(o.getAsJsonObject("args").get("op_name").getAsString());
              }
            }
          }
        }
        return new Run(outs.get(0), outs, ops);
      } finally {
        feed.values().forEach(OnnxTensor::close);
      }
    }
  }

  private static float[] gaussian(Random random, int n, double scale) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) (random.nextGaussian() * scale);
    }
    return v;
  }

  /** Runs op with the kernels and with the function body; max |difference| / max |function's|. */
  private static double compare(String op, Map<String, long[]> shapes, Map<String, float[]> values, Path dir) throws Exception {
    assumeTrue(FusedKernels.available(), FusedKernels.unavailableReason());
    Run body = run(model(op, shapes, true), false, shapes, values, dir);
    Run kernel = run(model(op, shapes, true), true, shapes, values, dir);
    assertFalse(body.ops().contains(op), op + " without the kernels runs its body: " + body.ops());
    assertEquals(Set.of(op), kernel.ops(), op + " with the kernels runs as one kernel");
    assertEquals(body.outs().size(), kernel.outs().size());
    double worst = 0;
    for (int o = 0; o < body.outs().size(); o++) {
      float[] b = body.outs().get(o);
      float[] k = kernel.outs().get(o);
      assertEquals(b.length, k.length);
      double scale = 0;
      double diff = 0;
      for (int i = 0; i < b.length; i++) {
        assertTrue(Float.isFinite(k[i]), op + " output " + o + "[" + i + "] = " + k[i]);
        scale = Math.max(scale, Math.abs(b[i]));
        diff = Math.max(diff, Math.abs(b[i] - k[i]));
      }
      System.out.printf(Locale.ROOT, "%s output %d: max |kernel − body| = %.3g, max |body| = %.3g%n", op, o, diff, scale);
      worst = Math.max(worst, diff / scale);
    }
    return worst;
  }

  /** The inputs in the op's order (the node takes them in this map's order). */
  private static Map<String, long[]> shapes(String first, long[] firstDims, String second, long[] secondDims) {
    Map<String, long[]> shapes = new LinkedHashMap<>();
    shapes.put(first, firstDims);
    shapes.put(second, secondDims);
    return shapes;
  }

  @Test
  void geluGradMatchesItsBody(@TempDir Path dir) throws Exception {
    int n = 3 * 5 * 4099;
    float[] x = gaussian(new Random(1), n, 3);
    float[] extremes = {0, -0f, 1e-30f, -1e-30f, 5, -5, 9, -9, 12, -12, 20, -20, 80, -80, 1e4f, -1e4f};
    System.arraycopy(extremes, 0, x, 0, extremes.length);
    float[] dy = gaussian(new Random(2), n, 1);
    double rel = compare(FusedOps.GELU_GRAD, shapes("dy", new long[] {3, 5, 4099}, "x", new long[] {3, 5, 4099}),
        Map.of("dy", dy, "x", x), dir);
    assertTrue(rel < 1e-6, "relative difference " + rel);
  }

  /**
   * The forward LayerNorm against float64 and against ONNX Runtime's LayerNormalization (its body):
   * y, mean and inv_std. Rows with a mean a thousand times their spread are where the two differ:
   * the kernel takes the variance of x − mean (two passes over the row), ONNX Runtime's kernel
   * E[x²] − mean², which loses digits there; the kernel is held to float64, the body only printed.
   */
  @Test
  void layerNormMatchesFloat64AndItsBody(@TempDir Path dir) throws Exception {
    assumeTrue(FusedKernels.available(), FusedKernels.unavailableReason());
    Random random = new Random(5);
    int rows = 3 * 211;
    int width = 389;
    float[] x = gaussian(random, rows * width, 3);
    for (int r = 0; r < rows; r++) {
      for (int i = 0; i < width; i++) {
        x[r * width + i] = x[r * width + i] * (r % 5 + 0.01f) + (r % 9 - 4) * 10;
      }
    }
    float[] scale = gaussian(random, width, 1);
    float[] bias = gaussian(random, width, 1);
    Map<String, long[]> shapes = new LinkedHashMap<>();
    shapes.put("x", new long[] {3, 211, width});
    shapes.put("scale", new long[] {width});
    shapes.put("bias", new long[] {width});
    Map<String, float[]> values = Map.of("x", x, "scale", scale, "bias", bias);
    Run body = run(model(FusedOps.LAYER_NORM, shapes, true), false, shapes, values, dir);
    Run kernel = run(model(FusedOps.LAYER_NORM, shapes, true), true, shapes, values, dir);
    assertEquals(Set.of(FusedOps.LAYER_NORM), kernel.ops());
    assertFalse(body.ops().contains(FusedOps.LAYER_NORM), body.ops().toString());
    double[][] want = {new double[x.length], new double[rows], new double[rows]};
    for (int r = 0; r < rows; r++) {
      double m = 0;
      for (int i = 0; i < width; i++) {
        m += x[r * width + i];
      }
      m /= width;
      double v = 0;
      for (int i = 0; i < width; i++) {
        v += (x[r * width + i] - m) * (x[r * width + i] - m);
      }
      double inv = 1 / Math.sqrt(v / width + 1e-3);
      for (int i = 0; i < width; i++) {
        want[0][r * width + i] = (x[r * width + i] - m) * inv * scale[i] + bias[i];
      }
      want[1][r] = m;
      want[2][r] = inv;
    }
    String[] names = {"y", "mean", "inv_std"};
    for (int o = 0; o < 3; o++) {
      double scaleOf = 0;
      double kernelError = 0;
      double bodyError = 0;
      for (int i = 0; i < want[o].length; i++) {
        scaleOf = Math.max(scaleOf, Math.abs(want[o][i]));
        kernelError = Math.max(kernelError, Math.abs(kernel.outs().get(o)[i] - want[o][i]));
        bodyError = Math.max(bodyError, Math.abs(body.outs().get(o)[i] - want[o][i]));
      }
      System.out.printf(Locale.ROOT, "LayerNorm %s: max |kernel − float64| = %.3g, max |body − float64| = %.3g,"
          + " max |float64| = %.3g%n", names[o], kernelError, bodyError, scaleOf);
      assertTrue(kernelError <= 2e-6 * scaleOf, names[o] + ": " + kernelError);
    }
  }

  @Test
  void softmaxGradMatchesItsBody(@TempDir Path dir) throws Exception {
    Random random = new Random(3);
    int rows = 2 * 3 * 97;
    int width = 131;
    float[] y = new float[rows * width];
    for (int r = 0; r < rows; r++) {
      double sum = 0;
      double[] e = new double[width];
      for (int i = 0; i < width; i++) {
        e[i] = Math.exp(random.nextGaussian() * (r % 2 == 0 ? 1 : 8));
        sum += e[i];
      }
      for (int i = 0; i < width; i++) {
        y[r * width + i] = (float) (e[i] / sum);
      }
    }
    float[] dy = gaussian(random, rows * width, 1);
    double rel = compare(FusedOps.SOFTMAX_GRAD, shapes("dy", new long[] {2, 3, 97, width}, "y", new long[] {2, 3, 97, width}),
        Map.of("dy", dy, "y", y), dir);
    assertTrue(rel < 1e-5, "relative difference " + rel);
  }

  @Test
  void layerNormGradMatchesItsBody(@TempDir Path dir) throws Exception {
    Random random = new Random(4);
    int rows = 4 * 129;
    int width = 389;
    float[] x = gaussian(random, rows * width, 2);
    float[] mean = new float[rows];
    float[] inv = new float[rows];
    for (int r = 0; r < rows; r++) {
      double m = 0;
      for (int i = 0; i < width; i++) {
        x[r * width + i] += (float) (r % 7 - 3);
        m += x[r * width + i];
      }
      m /= width;
      double v = 0;
      for (int i = 0; i < width; i++) {
        v += (x[r * width + i] - m) * (x[r * width + i] - m);
      }
      mean[r] = (float) m;
      inv[r] = (float) (1 / Math.sqrt(v / width + 1e-12));
    }
    Map<String, long[]> shapes = new LinkedHashMap<>();
    shapes.put("dy", new long[] {4, 129, width});
    shapes.put("x", new long[] {4, 129, width});
    shapes.put("scale", new long[] {width});
    shapes.put("mean", new long[] {4, 129, 1});
    shapes.put("inv_std", new long[] {4, 129, 1});
    double rel = compare(FusedOps.LAYER_NORM_GRAD, shapes, Map.of("dy", gaussian(random, rows * width, 1), "x", x,
        "scale", gaussian(random, width, 1), "mean", mean, "inv_std", inv), dir);
    assertTrue(rel < 1e-5, "relative difference " + rel);
  }

  /** The kernels check what the graphs guarantee (one shape for dy and x): otherwise NaN, which a step reports. */
  @Test
  void inputsOfUnexpectedShapesGiveNaN(@TempDir Path dir) throws Exception {
    assumeTrue(FusedKernels.available(), FusedKernels.unavailableReason());
    Map<String, long[]> shapes = shapes("dy", new long[] {1}, "x", new long[] {4, 8});
    Run r = run(model(FusedOps.GELU_GRAD, shapes, false), true, shapes, Map.of("dy", new float[] {1}, "x", new float[32]), dir);
    assertEquals(32, r.out().length);
    for (float v : r.out()) {
      assertTrue(Float.isNaN(v));
    }
    Map<String, long[]> ln = new LinkedHashMap<>();
    ln.put("dy", new long[] {2, 8});
    ln.put("x", new long[] {2, 8});
    ln.put("scale", new long[] {7});
    ln.put("mean", new long[] {2, 1});
    ln.put("inv_std", new long[] {2, 1});
    Run l = run(model(FusedOps.LAYER_NORM_GRAD, ln, false), true, ln, Map.of("dy", new float[16], "x", new float[16],
        "scale", new float[7], "mean", new float[2], "inv_std", new float[2]), dir);
    for (float v : l.out()) {
      assertTrue(Float.isNaN(v));
    }
  }

  /**
   * all-MiniLM-L6-v2 with LoRA on query and value: its training graph uses all three fused ops, and
   * 16 steps give the same losses with the kernels as with the function bodies (float32 rounding).
   */
  @Test
  void miniLmTrainsTheSameWithAndWithoutTheKernels() throws Exception {
    assumeTrue(FusedKernels.available(), FusedKernels.unavailableReason());
    HostModel host;
    try (InputStream in = getClass().getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
      host = HostModel.read(in, "all-minilm-l6-v2.onnx");
    }
    CompiledGraft graft = Graft.host(host).lora(".*/attention/self/(query|value)/MatMul", l -> l.rank(8).alpha(16))
        .classification(2).compile();
    Map<String, Long> fused = new LinkedHashMap<>();
    for (NodeProto n : graft.train().getGraph().getNodeList()) {
      if (n.getDomain().equals(Graph.GRAFT_DOMAIN)) {
        fused.merge(n.getOpType(), 1L, Long::sum);
      }
    }
    assertEquals(Map.of(FusedOps.LAYER_NORM, 13L, FusedOps.GELU_GRAD, 6L, FusedOps.SOFTMAX_GRAD, 6L,
        FusedOps.LAYER_NORM_GRAD, 12L), fused);
    List<String> functions = new ArrayList<>();
    graft.train().getFunctionsList().forEach(f -> functions.add(f.getName()));
    assertEquals(List.of(FusedOps.GELU_GRAD, FusedOps.LAYER_NORM, FusedOps.LAYER_NORM_GRAD, FusedOps.SOFTMAX_GRAD),
        functions);
    assertTrue(graft.inference().getGraph().getNodeList().stream().noneMatch(n -> n.getDomain().equals(Graph.GRAFT_DOMAIN)),
        "the inference graph keeps standard ops");
    assertTrue(FusedKernels.usedBy(graft.train()), "the training session registers the kernels");
    assertFalse(FusedKernels.usedBy(graft.inference()), "the inference session does not");
    ModelOptions options = ModelOptions.defaults().withSeed(7);
    float[] withKernels = Int8MiniLmTest.losses(graft, options);
    float[] withBodies = Int8MiniLmTest.losses(graft, options.withFusedKernels(false));
    System.out.printf("MiniLM losses, fused kernels: %s%nMiniLM losses, function bodies: %s%n",
        Arrays.toString(withKernels), Arrays.toString(withBodies));
    assertEquals(withBodies[0], withKernels[0], 1e-6f * withBodies[0], "step 1 (the forward: the same graph)");
    for (int s = 1; s < withKernels.length; s++) {
      assertEquals(withBodies[s], withKernels[s], 1e-4f * withBodies[s], "step " + (s + 1));
    }
  }
}
