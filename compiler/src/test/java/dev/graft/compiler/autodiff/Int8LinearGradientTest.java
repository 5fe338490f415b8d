package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.QuantizedMatMul;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The straight-through rule of an int8 linear layer ({@link ContractionGradients#int8MatMul}):
 * on {@code loss = Σ (DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scales) → Add(bias))(x) ⊙ R}
 * the gradient of x must be {@code R · W_deqᵀ} with {@code W_deq = (Wq − zp)·scale}: exactly the
 * gradient of the float layer {@code x·W_deq + b} (linear in x, so its central differences are
 * that product too), whatever the rounding of x in the forward pass. The weight stays int8 in the
 * differentiated graph.
 */
class Int8LinearGradientTest {
  private static final int IN = 5;
  private static final int OUT = 4;
  private static final long[] X_SHAPE = {2, 3, IN};

  private final Random random = new Random(11);
  private final byte[] wq = new byte[IN * OUT];
  private final byte[] zp = new byte[OUT];
  private final double[] scale = new double[OUT];
  private final double[] r = new double[2 * 3 * OUT];

  /** How the weight's zero point is given (SCALAR: with a scalar scale, as the pattern requires). */
  private enum ZeroPoint { PER_COLUMN, ALL_ZERO, SCALAR }

  private Graph graph(boolean leak) {
    return graph(leak, ZeroPoint.PER_COLUMN);
  }

  /** The int8 layer on input x with loss Σ y ⊙ R; with {@code leak}, x's scale is also read outside the pattern. */
  private Graph graph(boolean leak, ZeroPoint zeroPoint) {
    for (int i = 0; i < wq.length; i++) {
      wq[i] = (byte) (random.nextInt(256) - 128);
    }
    byte shared = (byte) (random.nextInt(21) - 10);
    double sharedScale = (float) (0.001 + 0.01 * random.nextDouble());
    for (int j = 0; j < OUT; j++) {
      zp[j] = switch (zeroPoint) {
        case PER_COLUMN -> (byte) (random.nextInt(21) - 10);
        case ALL_ZERO -> 0;
        case SCALAR -> shared;
      };
      scale[j] = zeroPoint == ZeroPoint.SCALAR ? sharedScale : (float) (0.001 + 0.01 * random.nextDouble());
    }
    for (int i = 0; i < r.length; i++) {
      r[i] = random.nextGaussian();
    }
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, X_SHAPE));
    g.addInitializer(TensorProto.newBuilder().setName("w_quantized").setDataType(TensorType.INT8).addDims(IN).addDims(OUT)
        .setRawData(ByteString.copyFrom(wq)).build(), false);
    TensorProto.Builder zeroPoints = TensorProto.newBuilder().setName("w_zero_point").setDataType(TensorType.INT8);
    if (zeroPoint == ZeroPoint.SCALAR) {
      zeroPoints.setRawData(ByteString.copyFrom(new byte[] {shared}));
    } else {
      zeroPoints.addDims(OUT).setRawData(ByteString.copyFrom(zp));
    }
    g.addInitializer(zeroPoints.build(), false);
    g.addInitializer(zeroPoint == ZeroPoint.SCALAR
        ? Tensors.floats("w_scale", TensorType.FLOAT, List.of(), new double[] {sharedScale})
        : Tensors.floats("w_scale", TensorType.FLOAT, List.of((long) OUT), scale), false);
    g.addInitializer(Tensors.floats("bias", TensorType.FLOAT, List.of((long) OUT), new double[] {0.1, -0.2, 0.3, 0}), false);
    g.addInitializer(Tensors.floats("r", TensorType.FLOAT, List.of(2L, 3L, (long) OUT), r), false);
    List<String> q = g.add("/fc/x_QuantizeLinear", "DynamicQuantizeLinear", "", List.of("x"), 3, Node.attrs());
    String p = g.op("/fc/MatMul_quant", "MatMulInteger", List.of(q.get(0), "w_quantized", q.get(2), "w_zero_point"));
    String c = g.op("/fc/MatMul_quant_cast", "Cast", List.of(p), attr("to", (long) TensorType.FLOAT));
    String s = g.op("/fc/MatMul_quant_scales_mul", "Mul", List.of(q.get(1), "w_scale"));
    String y = g.op("/fc/Add", "Add", List.of(g.op("/fc/MatMul_quant_output_scale_mul", "Mul", List.of(c, s)), "bias"));
    if (leak) {
      y = g.op("/leak/Add", "Add", List.of(y, q.get(1)));
    }
    g.outputs().add(g.op("/loss/ReduceSum", "ReduceSum", List.of(g.op("/loss/Mul", "Mul", List.of(y, "r"))),
        attr("keepdims", 0L)));
    ShapeInference.run(g);
    return g;
  }

  @org.junit.jupiter.api.io.TempDir java.nio.file.Path dir;

  @Test
  void theGradientOfXIsTheDequantizedWeightsTransposeProduct() throws OrtException, java.io.IOException {
    Graph g = graph(false);
    assertEquals(1, QuantizedMatMul.find(g).size(), "the pattern is recognised");
    String loss = g.outputs().get(0);
    String grad = Autodiff.differentiate(g, loss, List.of("x")).get("x");
    g.outputs().add(grad);
    // The weight stays int8: no float tensor of its size, and it is dequantized at run time.
    assertTrue(g.initializers().values().stream()
        .noneMatch(t -> t.getDataType() == TensorType.FLOAT && Tensors.elementCount(t) == IN * OUT), "no float weight");
    assertTrue(g.nodes().stream().anyMatch(n -> n.opType().equals("DequantizeLinear")), "dequantized in the backward");
    float[] x = new float[2 * 3 * IN];
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) random.nextGaussian();
    }
    // ONNX Runtime's optimizer (all levels) keeps the weight int8 too: it does not fold the
    // DequantizeLinear of the constant weight into a float initializer.
    Run run = run(g, grad, x, "optimized.onnx");
    float[] analytic = run.gradient();
    dev.graft.spec.onnx.Onnx.ModelProto after = run.optimized();
    assertTrue(after.getGraph().getNodeList().stream().anyMatch(n -> n.getOpType().equals("DequantizeLinear")),
        "ORT's optimized graph dequantizes at run time");
    double worst = 0;
    for (int row = 0; row < 6; row++) {
      for (int i = 0; i < IN; i++) {
        double expected = 0;
        for (int j = 0; j < OUT; j++) {
          expected += r[row * OUT + j] * (float) ((wq[i * OUT + j] - zp[j]) * (float) scale[j]);
        }
        double err = Math.abs(analytic[row * IN + i] - expected);
        worst = Math.max(worst, err / (1e-6 + Math.abs(expected)));
        assertTrue(err <= 1e-6 + 1e-5 * Math.abs(expected),
            "d loss/d x[" + row + ", " + i + "]: " + analytic[row * IN + i] + ", expected R·W_deqᵀ = " + expected);
      }
    }
    System.out.printf("int8 straight-through dL/dx vs R·W_deqT: worst relative error %.2e%n", worst);
  }

  /**
   * {@link Int8Backward#INTEGER}: {@code dL/dx = ĝ·Wqᵀ − ĝ·zp} with {@code ĝ = R ⊙ scale}
   * quantized per tensor to uint8 by ONNX Runtime's DynamicQuantizeMatMul. Its quantization step
   * is {@code q = (max(ĝ, 0) − min(ĝ, 0)) / 255}, so each element of the result is within {@code
   * q/2 · Σ_j |Wq[i, j] − zp[j]|} of the exact {@code R·W_deqᵀ}: the bound the test holds it to,
   * for per-column, all-zero (no zero-point term emitted) and scalar zero points.
   */
  @Test
  void theIntegerBackwardIsTheExactProductWithinTheGradientsQuantizationStep() throws Exception {
    for (ZeroPoint zeroPoint : ZeroPoint.values()) {
      Graph g = graph(false, zeroPoint);
      String loss = g.outputs().get(0);
      Autodiff.Gradients gradients = Autodiff.backward(g, loss, List.of("x"), Int8Backward.INTEGER);
      assertEquals(List.of("/fc/MatMul_quant_output_scale_mul"), gradients.integerProducts());
      String grad = gradients.values().get("x");
      g.outputs().add(grad);
      assertTrue(g.nodes().stream().anyMatch(n -> n.opType().equals("DynamicQuantizeMatMul")), "an integer product");
      assertTrue(g.nodes().stream().noneMatch(n -> n.opType().equals("DequantizeLinear")), "nothing dequantized");
      assertEquals(zeroPoint != ZeroPoint.ALL_ZERO,
          g.nodes().stream().anyMatch(n -> n.name().startsWith("/grad/") && n.inputs().stream().anyMatch(
              v -> v.contains("Cast") && g.producer(v) != null && g.producer(v).input(0).equals("w_zero_point"))),
          zeroPoint + ": the zero-point term is emitted only where a zero point is not 0");
      float[] x = new float[2 * 3 * IN];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) random.nextGaussian();
      }
      Run run = run(g, grad, x, "optimized-" + zeroPoint + ".onnx");
      float[] analytic = run.gradient();
      dev.graft.spec.onnx.Onnx.ModelProto after = run.optimized();
      assertTrue(after.getGraph().getNodeList().stream().noneMatch(n -> n.getOpType().equals("Transpose")),
          "ORT folds the int8 weight's transpose at load");
      double lo = 0;
      double hi = 0;
      for (int row = 0; row < 6; row++) {
        for (int j = 0; j < OUT; j++) {
          double scaled = r[row * OUT + j] * (float) scale[j];
          lo = Math.min(lo, scaled);
          hi = Math.max(hi, scaled);
        }
      }
      double step = (hi - lo) / 255;
      double worst = 0;
      for (int row = 0; row < 6; row++) {
        for (int i = 0; i < IN; i++) {
          double expected = 0;
          double weightSum = 0;
          for (int j = 0; j < OUT; j++) {
            expected += r[row * OUT + j] * (float) ((wq[i * OUT + j] - zp[j]) * (float) scale[j]);
            weightSum += Math.abs(wq[i * OUT + j] - zp[j]);
          }
          double bound = step / 2 * weightSum * (1 + 1e-5) + 1e-6 * Math.abs(expected);
          double err = Math.abs(analytic[row * IN + i] - expected);
          worst = Math.max(worst, err / bound);
          assertTrue(err <= bound, zeroPoint + ": d loss/d x[" + row + ", " + i + "] = " + analytic[row * IN + i]
              + ", expected R·W_deqT = " + expected + " within the quantization bound " + bound);
        }
      }
      System.out.printf("int8 integer backward (%s zero point): worst error / quantization bound %.2f%n", zeroPoint,
          worst);
    }
  }

  /**
   * {@link Int8Backward#INTEGER} through a float32 layer {@code y = x·W + b} (a float host's frozen
   * weight): {@code dL/dx ≈ R·Wᵀ} with Wᵀ quantized per column to int8 (scale {@code s[i] =
   * max_o |W[i, o]| / 127}) and R per tensor to uint8 (step q). Each element is within {@code
   * q/2 · Σ_o |Wq[o, i]·s[i]| + s[i]/2 · Σ_o |R[o]|} of the exact product: the bound the test holds
   * it to. ONNX Runtime folds the weight's quantization at load: its optimized graph runs no
   * QuantizeLinear, only the DynamicQuantizeMatMul.
   */
  @Test
  void theIntegerBackwardThroughAFloatWeightIsTheExactProductWithinBothQuantizationSteps() throws Exception {
    double[] w = new double[IN * OUT];
    for (int i = 0; i < w.length; i++) {
      w[i] = (float) (0.1 * random.nextGaussian());
    }
    for (int i = 0; i < r.length; i++) {
      r[i] = random.nextGaussian();
    }
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, X_SHAPE));
    g.addInitializer(Tensors.floats("w", TensorType.FLOAT, List.of((long) IN, (long) OUT), w), false);
    g.addInitializer(Tensors.floats("r", TensorType.FLOAT, List.of(2L, 3L, (long) OUT), r), false);
    String y = g.op("/fc/MatMul", "MatMul", List.of("x", "w"));
    g.outputs().add(g.op("/loss/ReduceSum", "ReduceSum", List.of(g.op("/loss/Mul", "Mul", List.of(y, "r"))),
        attr("keepdims", 0L)));
    ShapeInference.run(g);
    Autodiff.Gradients gradients = Autodiff.backward(g, g.outputs().get(0), List.of("x"), Int8Backward.INTEGER);
    assertEquals(List.of("/fc/MatMul"), gradients.integerProducts());
    String grad = gradients.values().get("x");
    g.outputs().add(grad);
    float[] x = new float[2 * 3 * IN];
    Run run = run(g, grad, x, "optimized-float.onnx", false);
    List<String> ops = run.optimized().getGraph().getNodeList().stream().map(n -> n.getOpType()).toList();
    assertTrue(ops.contains("DynamicQuantizeMatMul") && !ops.contains("QuantizeLinear"), ops.toString());
    double lo = 0;
    double hi = 0;
    for (double v : r) {
      lo = Math.min(lo, (float) v);
      hi = Math.max(hi, (float) v);
    }
    double q = (hi - lo) / 255;
    double worst = 0;
    for (int row = 0; row < 6; row++) {
      for (int i = 0; i < IN; i++) {
        double max = 0;
        for (int o = 0; o < OUT; o++) {
          max = Math.max(max, Math.abs(w[i * OUT + o]));
        }
        double s = (float) (max / 127);
        double expected = 0;
        double weights = 0;
        double grads = 0;
        for (int o = 0; o < OUT; o++) {
          expected += (float) r[row * OUT + o] * w[i * OUT + o];
          weights += Math.abs(Math.round(w[i * OUT + o] / s) * s);
          grads += Math.abs((float) r[row * OUT + o]);
        }
        double bound = (q / 2 * weights + s / 2 * grads) * (1 + 1e-5) + 1e-6;
        double err = Math.abs(run.gradient()[row * IN + i] - expected);
        worst = Math.max(worst, err / bound);
        assertTrue(err <= bound, "d loss/d x[" + row + ", " + i + "] = " + run.gradient()[row * IN + i]
            + ", expected R·Wᵀ = " + expected + " within " + bound);
      }
    }
    System.out.printf("integer backward through a float weight: worst error / bound %.2f%n", worst);
  }

  @Test
  void anInt8PatternWhoseInnerValuesAreReadElsewhereIsNotDifferentiated() {
    Graph g = graph(true);
    assertEquals(List.of(), QuantizedMatMul.find(g), "x's scale is read outside the layer");
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, g.outputs().get(0), List.of("x")));
    assertEquals("DynamicQuantizeLinear", e.node().opType(), e.getMessage());
    assertTrue(e.getMessage().contains("an int8 linear layer is differentiated as a whole (straight through)"),
        e.getMessage());
  }

  /** The gradient {@code grad} of a run of {@code g} on {@code x}, and ONNX Runtime's optimized graph. */
  private record Run(float[] gradient, dev.graft.spec.onnx.Onnx.ModelProto optimized) {}

  /**
   * Runs {@code g} on {@code x} with all of ONNX Runtime's optimizations, its optimized graph
   * written to {@code file} in the test's folder; for an int8 weight, asserts that graph holds no
   * float copy of it.
   */
  private Run run(Graph g, String grad, float[] x, String file) throws OrtException, java.io.IOException {
    return run(g, grad, x, file, true);
  }

  private Run run(Graph g, String grad, float[] x, String file, boolean int8Weight)
      throws OrtException, java.io.IOException {
    java.nio.file.Path optimized = dir.resolve(file);
    OrtSession.SessionOptions options = new OrtSession.SessionOptions();
    options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
    options.setOptimizedModelFilePath(optimized.toString());
    float[] gradient;
    try (options; OrtSession session = GradCheck.ENV.createSession(OnnxExport.write(g, "int8").toByteArray(), options);
        OnnxTensor in = OnnxTensor.createTensor(GradCheck.ENV, FloatBuffer.wrap(x), X_SHAPE);
        OrtSession.Result result = session.run(Map.of("x", in))) {
      gradient = flatten((float[][][]) result.get(grad).orElseThrow().getValue());
    }
    dev.graft.spec.onnx.Onnx.ModelProto after = dev.graft.spec.onnx.Onnx.ModelProto.parseFrom(
        java.nio.file.Files.readAllBytes(optimized));
    assertTrue(!int8Weight || after.getGraph().getInitializerList().stream()
        .noneMatch(t -> t.getDataType() == TensorType.FLOAT && Tensors.elementCount(t) == IN * OUT),
        "ORT's optimized graph holds no float copy of the weight");
    return new Run(gradient, after);
  }

  private static float[] flatten(float[][][] v) {
    float[] out = new float[v.length * v[0].length * v[0][0].length];
    int k = 0;
    for (float[][] a : v) {
      for (float[] b : a) {
        for (float c : b) {
          out[k++] = c;
        }
      }
    }
    return out;
  }
}
