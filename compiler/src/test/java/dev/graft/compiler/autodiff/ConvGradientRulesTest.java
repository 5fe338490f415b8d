package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Finite-difference checks of the Gemm and CNN gradient rules ({@link ConvGradients}), by the
 * method of {@link GradCheck}.
 *
 * <p>Gemm, MaxPool and BatchNormalization run in float64 with GradCheck's defaults (h = 1e-6,
 * pass when |analytic − numeric| ≤ 1e-6 + 1e-5·|numeric|). ONNX Runtime's CPU Conv,
 * ConvTranspose, AveragePool and GlobalAveragePool kernels are float32 only, so those checks
 * run in float32 with the op's output cast to float64 before the weighted sum (the loss adds no
 * float32 rounding): the ops are linear in every input, so the central difference has no
 * truncation error, and with h = 1e-2 the float32 rounding of y (≈ 6e-8·|y| per element, a few
 * hundred elements) stays below 1e-4. Pass when |analytic − numeric| ≤ 5e-4 + 1e-3·|numeric|.
 */
class ConvGradientRulesTest {
  private static final int F64 = TensorType.DOUBLE;

  static long[] s(long... dims) {
    return dims;
  }

  private static GradCheck float32(long seed) {
    return GradCheck.float32(seed).step(1e-2).tolerance(5e-4, 1e-3);
  }

  /** The op's output as float64, so the harness's loss sums in double. */
  private static String toDouble(Graph g, String y) {
    return g.op("to_double", "Cast", List.of(y), attr("to", (long) F64));
  }

  // ---- Gemm -------------------------------------------------------------------------------

  static Stream<Arguments> gemmCases() {
    List<Arguments> out = new ArrayList<>();
    // C shapes for M = 3, N = 4: absent, full, row, column, scalar.
    List<long[]> cs = List.of(s(-1), s(3, 4), s(4), s(1, 4), s(3, 1), s());
    for (long ta = 0; ta <= 1; ta++) {
      for (long tb = 0; tb <= 1; tb++) {
        for (long[] cShape : cs) {
          out.add(Arguments.of(ta, tb, cShape, 1.0f, 1.0f));
        }
        out.add(Arguments.of(ta, tb, s(4), 0.75f, -1.5f));
      }
    }
    return out.stream();
  }

  @ParameterizedTest(name = "transA {0} transB {1} C {2} alpha {3} beta {4}")
  @MethodSource("gemmCases")
  @GradientOf("Gemm")
  void gemm(long ta, long tb, long[] cShape, float alpha, float beta) {
    boolean withC = cShape.length == 0 || cShape[0] >= 0;
    GradCheck c = GradCheck.float64(100 + 8 * ta + 4 * tb + java.util.Arrays.hashCode(cShape))
        .param("a", ta == 1 ? s(5, 3) : s(3, 5), -1, 1)
        .param("b", tb == 1 ? s(4, 5) : s(5, 4), -1, 1);
    if (withC) {
      c.param("c", cShape, -1, 1);
    }
    c.check("Gemm", g -> g.op("gemm", "Gemm", withC ? List.of("a", "b", "c") : List.of("a", "b"),
        attr("transA", ta), attr("transB", tb), attr("alpha", alpha), attr("beta", beta)));
  }

  @Test
  @GradientOf("Gemm")
  void gemmWithFrozenWeightAndSymbolicBatch() {
    // The linear-layer form: x [batch, 5] · Wᵀ + b, W frozen, batch symbolic.
    GradCheck.float64(120).param("x", s(3, 5), -1, 1).frozen("w", s(4, 5), -1, 1).param("bias", s(4), -1, 1)
        .declare("x", Dim.symbol("batch"), Dim.of(5))
        .check("Gemm", g -> g.op("gemm", "Gemm", List.of("x", "w", "bias"), attr("transB", 1L)));
  }

  // ---- Conv -------------------------------------------------------------------------------

  /** A Conv case: input and weight shapes, bias, attributes. */
  record ConvCase(String name, long[] x, long[] w, boolean bias, List<AttributeProto> attrs) {
    @Override
    public String toString() {
      return name;
    }
  }

  static Stream<ConvCase> convCases() {
    return Stream.of(
        new ConvCase("3x3 pad 1 with bias", s(2, 3, 6, 6), s(4, 3, 3, 3), true,
            List.of(attr("pads", List.of(1L, 1L, 1L, 1L)))),
        new ConvCase("stride 2, asymmetric pads, odd size", s(2, 2, 7, 6), s(3, 2, 3, 2), true,
            List.of(attr("strides", List.of(2L, 2L)), attr("pads", List.of(1L, 0L, 0L, 1L)))),
        new ConvCase("stride 3 leaves rows unread", s(1, 2, 8, 8), s(2, 2, 2, 2), false,
            List.of(attr("strides", List.of(3L, 3L)))),
        new ConvCase("dilation 2", s(2, 2, 7, 7), s(3, 2, 3, 3), true,
            List.of(attr("dilations", List.of(2L, 2L)), attr("pads", List.of(1L, 2L, 1L, 2L)))),
        new ConvCase("dilation and stride", s(1, 2, 9, 8), s(2, 2, 2, 3), true,
            List.of(attr("dilations", List.of(2L, 1L)), attr("strides", List.of(2L, 3L)))),
        new ConvCase("groups 2", s(2, 4, 5, 5), s(6, 2, 3, 3), true,
            List.of(attr("group", 2L), attr("pads", List.of(1L, 1L, 1L, 1L)))),
        new ConvCase("depthwise stride 2", s(2, 3, 6, 6), s(3, 1, 3, 3), true,
            List.of(attr("group", 3L), attr("strides", List.of(2L, 2L)), attr("pads", List.of(1L, 1L, 1L, 1L)))),
        new ConvCase("groups 2 dilation stride", s(1, 4, 8, 7), s(4, 2, 2, 2), false,
            List.of(attr("group", 2L), attr("dilations", List.of(2L, 2L)), attr("strides", List.of(2L, 2L)))),
        new ConvCase("1x1", s(2, 3, 4, 4), s(5, 3, 1, 1), true, List.of()),
        new ConvCase("auto_pad SAME_UPPER stride 2", s(2, 2, 7, 6), s(3, 2, 3, 3), true,
            List.of(attrS("auto_pad", "SAME_UPPER"), attr("strides", List.of(2L, 2L)))),
        new ConvCase("auto_pad SAME_LOWER", s(1, 2, 5, 6), s(2, 2, 2, 3), true,
            List.of(attrS("auto_pad", "SAME_LOWER"))),
        new ConvCase("auto_pad VALID", s(2, 2, 6, 5), s(2, 2, 3, 2), false,
            List.of(attrS("auto_pad", "VALID"), attr("kernel_shape", List.of(3L, 2L)))));
  }

  static AttributeProto attrS(String name, String value) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
        .setS(com.google.protobuf.ByteString.copyFromUtf8(value)).build();
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("convCases")
  @GradientOf("Conv")
  void conv(ConvCase k) {
    GradCheck c = float32(200 + k.name().hashCode()).param("x", k.x(), -1, 1).param("w", k.w(), -1, 1);
    if (k.bias()) {
      c.param("b", s(k.w()[0]), -1, 1);
    }
    c.check("Conv", g -> toDouble(g, g.op("conv", "Conv", k.bias() ? List.of("x", "w", "b") : List.of("x", "w"),
        k.attrs().toArray(new AttributeProto[0]))));
  }

  @Test
  @GradientOf("Conv")
  void convFrozenWeightSymbolicBatch() {
    // The host form: only the input is differentiated, the batch dim is symbolic.
    float32(230).param("x", s(2, 2, 5, 5), -1, 1).frozen("w", s(3, 2, 3, 3), -1, 1)
        .declare("x", Dim.symbol("batch"), Dim.of(2), Dim.of(5), Dim.of(5))
        .check("Conv", g -> toDouble(g, g.op("conv", "Conv", List.of("x", "w"),
            attr("strides", List.of(2L, 2L)), attr("pads", List.of(1L, 1L, 1L, 1L)))));
  }

  // ---- MaxPool ----------------------------------------------------------------------------

  static Stream<Arguments> maxPoolCases() {
    return Stream.of(
        Arguments.of("2x2 stride 2", List.of(attr("kernel_shape", List.of(2L, 2L)), attr("strides", List.of(2L, 2L)))),
        Arguments.of("3x3 stride 1 pad 1 (overlapping)", List.of(attr("kernel_shape", List.of(3L, 3L)),
            attr("pads", List.of(1L, 1L, 1L, 1L)))),
        Arguments.of("3x2 stride 2x1 asymmetric pads", List.of(attr("kernel_shape", List.of(3L, 2L)),
            attr("strides", List.of(2L, 1L)), attr("pads", List.of(0L, 1L, 1L, 0L)))),
        Arguments.of("2x2 dilation 2", List.of(attr("kernel_shape", List.of(2L, 2L)), attr("dilations", List.of(2L, 2L)))),
        Arguments.of("2x2 auto_pad SAME_UPPER stride 2", List.of(attr("kernel_shape", List.of(3L, 3L)),
            attr("strides", List.of(2L, 2L)), attrS("auto_pad", "SAME_UPPER"))));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("maxPoolCases")
  @GradientOf("MaxPool")
  void maxPool(String name, List<AttributeProto> attrs) {
    // Distinct values (a shuffled grid with spacing 1e-2 ≫ h): no ties, no switch under ±h.
    GradCheck c = GradCheck.float64(300 + name.hashCode());
    c.param("x", F64, s(2, 2, 5, 5), distinct(c, 100));
    c.check("MaxPool", g -> g.op("pool", "MaxPool", List.of("x"), attrs.toArray(new AttributeProto[0])));
  }

  @Test
  @GradientOf("MaxPool")
  void maxPoolWithIndicesOutput() {
    GradCheck c = GradCheck.float64(310);
    c.param("x", F64, s(1, 3, 4, 6), distinct(c, 72));
    c.check("MaxPool", g -> g.add("pool", "MaxPool", "", List.of("x"), 2,
        Node.attrs(attr("kernel_shape", List.of(2L, 3L)), attr("strides", List.of(1L, 2L)))).get(0));
  }

  /** The values −0.5 + 0.01·i, shuffled. */
  private static double[] distinct(GradCheck c, int n) {
    List<Double> v = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      v.add(-0.5 + 0.01 * i);
    }
    java.util.Collections.shuffle(v, c.random());
    return v.stream().mapToDouble(Double::doubleValue).toArray();
  }

  @Test
  void maxPoolTiesGoToTheIndexMaxPoolReports() {
    // All-equal window: the whole gradient goes to one element (ORT: the first in row-major order).
    GradCheck c = GradCheck.float64(320);
    c.param("x", F64, s(1, 1, 2, 2), new double[] {0.5, 0.5, 0.5, 0.5});
    GradCheck.Built b = c.build("MaxPool", g -> g.op("pool", "MaxPool", List.of("x"),
        attr("kernel_shape", List.of(2L, 2L))));
    try (var s = GradCheck.session(b.backward())) {
      double[] grad = GradCheck.run(s, c.feeds(Map.of()), List.of(b.grads().get("x"))).get(b.grads().get("x"));
      assertEquals(b.r()[0], grad[0], 1e-12);
      assertEquals(0, grad[1]);
      assertEquals(0, grad[2]);
      assertEquals(0, grad[3]);
    } catch (ai.onnxruntime.OrtException e) {
      throw new AssertionError(e);
    }
  }

  // ---- AveragePool / GlobalAveragePool -----------------------------------------------------

  static Stream<Arguments> averagePoolCases() {
    List<Arguments> out = new ArrayList<>();
    for (long include = 0; include <= 1; include++) {
      out.add(Arguments.of("2x2 stride 2", include, List.of(attr("kernel_shape", List.of(2L, 2L)),
          attr("strides", List.of(2L, 2L)))));
      out.add(Arguments.of("3x3 stride 1 pad 1", include, List.of(attr("kernel_shape", List.of(3L, 3L)),
          attr("pads", List.of(1L, 1L, 1L, 1L)))));
      out.add(Arguments.of("3x2 stride 2x1 asymmetric pads", include, List.of(attr("kernel_shape", List.of(3L, 2L)),
          attr("strides", List.of(2L, 1L)), attr("pads", List.of(2L, 0L, 1L, 1L)))));
      out.add(Arguments.of("3x3 stride 3 leaves rows unread", include, List.of(attr("kernel_shape", List.of(3L, 3L)),
          attr("strides", List.of(3L, 3L)))));
    }
    out.add(Arguments.of("3x3 auto_pad SAME_UPPER stride 2", 0L, List.of(attr("kernel_shape", List.of(3L, 3L)),
        attr("strides", List.of(2L, 2L)), attrS("auto_pad", "SAME_UPPER"))));
    return out.stream();
  }

  @ParameterizedTest(name = "{0}, count_include_pad {1}")
  @MethodSource("averagePoolCases")
  @GradientOf("AveragePool")
  void averagePool(String name, long includePad, List<AttributeProto> attrs) {
    List<AttributeProto> all = new ArrayList<>(attrs);
    all.add(attr("count_include_pad", includePad));
    float32(400 + name.hashCode() + includePad).param("x", s(2, 3, 7, 5), -1, 1)
        .check("AveragePool", g -> toDouble(g, g.op("pool", "AveragePool", List.of("x"),
            all.toArray(new AttributeProto[0]))));
  }

  @Test
  @GradientOf("GlobalAveragePool")
  void globalAveragePool() {
    float32(500).param("x", s(2, 3, 4, 5), -1, 1)
        .check("GlobalAveragePool", g -> toDouble(g, g.op("pool", "GlobalAveragePool", List.of("x"))));
  }

  @Test
  @GradientOf("GlobalAveragePool")
  void globalAveragePoolSymbolicBatchBroadcastAdd() {
    // The squeeze-excitation form: x + GAP(x), broadcast over H, W.
    float32(501).param("x", s(2, 3, 3, 4), -1, 1)
        .declare("x", Dim.symbol("batch"), Dim.of(3), Dim.of(3), Dim.of(4))
        .check("GlobalAveragePool", g -> toDouble(g, g.op("add", "Add",
            List.of("x", g.op("pool", "GlobalAveragePool", List.of("x"))))));
  }

  // ---- BatchNormalization -------------------------------------------------------------------

  @Test
  @GradientOf("BatchNormalization")
  void batchNormalizationInferenceAllInputs() {
    GradCheck.float64(600).param("x", s(2, 3, 4, 5), -2, 2).param("scale", s(3), -1.5, 1.5)
        .param("bias", s(3), -1, 1).param("mean", s(3), -1, 1).param("var", s(3), 0.2, 2)
        .check("BatchNormalization", g -> g.op("bn", "BatchNormalization",
            List.of("x", "scale", "bias", "mean", "var"), attr("epsilon", 1e-3f)));
  }

  @Test
  @GradientOf("BatchNormalization")
  void batchNormalizationFrozenStatisticsRank2() {
    // [N, C] input (BatchNorm1d), running statistics frozen, default epsilon.
    GradCheck.float64(601).param("x", s(4, 3), -2, 2).param("scale", s(3), -1.5, 1.5).param("bias", s(3), -1, 1)
        .frozen("mean", s(3), -1, 1).frozen("var", s(3), 0.2, 2)
        .check("BatchNormalization", g -> g.op("bn", "BatchNormalization",
            List.of("x", "scale", "bias", "mean", "var")));
  }

  // ---- Shape inference and rejections ------------------------------------------------------

  @Test
  void shapesOfCnnOps() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, List.of(Dim.symbol("batch"), Dim.of(2), Dim.of(7), Dim.of(6))));
    g.addInput("w", TensorType.of(TensorType.FLOAT, 4, 1, 3, 3));
    String conv = g.op("conv", "Conv", List.of("x", "w"), attr("group", 2L), attr("strides", List.of(2L, 2L)),
        attrS("auto_pad", "SAME_UPPER"));
    List<String> pool = g.add("pool", "MaxPool", "", List.of(conv), 2,
        Node.attrs(attr("kernel_shape", List.of(2L, 2L)), attr("pads", List.of(0L, 0L, 1L, 0L))));
    String avg = g.op("avg", "AveragePool", List.of(pool.get(0)), attr("kernel_shape", List.of(2L, 1L)));
    String gap = g.op("gap", "GlobalAveragePool", List.of(avg));
    ShapeInference.run(g);
    assertEquals("float32[batch, 4, 4, 3]", g.typeOrThrow(conv).toString());
    assertEquals("float32[batch, 4, 4, 2]", g.typeOrThrow(pool.get(0)).toString());
    assertEquals("int64[batch, 4, 4, 2]", g.typeOrThrow(pool.get(1)).toString());
    assertEquals("float32[batch, 4, 3, 2]", g.typeOrThrow(avg).toString());
    assertEquals("float32[batch, 4, 1, 1]", g.typeOrThrow(gap).toString());
  }

  static Stream<Arguments> rejected() {
    return Stream.of(
        Arguments.of("Conv", s(1, 2, 5), s(2, 2, 3), List.<AttributeProto>of(), "2-D kernel"),
        Arguments.of("Conv", s(1, 2, 5, 5), s(2, 2, 3, 3), List.of(attrS("auto_pad", "SAME_UPPER"),
            attr("pads", List.of(1L, 1L, 1L, 1L))), "together with explicit pads"),
        Arguments.of("MaxPool", s(1, 2, 5, 5), null, List.of(attr("kernel_shape", List.of(2L, 2L)),
            attr("storage_order", 1L)), "storage_order=1"),
        Arguments.of("MaxPool", s(1, 2, 5, 5), null, List.of(attr("kernel_shape", List.of(2L, 2L)),
            attr("ceil_mode", 1L)), "ceil_mode=1"),
        Arguments.of("AveragePool", s(1, 2, 5, 5), null, List.of(attr("kernel_shape", List.of(2L, 2L)),
            attr("ceil_mode", 1L)), "ceil_mode=1"),
        Arguments.of("AveragePool", s(1, 2, 5), null, List.of(attr("kernel_shape", List.of(2L))), "2-D kernels only"),
        Arguments.of("BatchNormalization", s(2, 3, 4, 4), null, List.of(attr("training_mode", 1L)), "training mode"));
  }

  /** Unsupported attribute combinations are a clear error naming the node, never a wrong gradient. */
  @ParameterizedTest(name = "{0} {4}")
  @MethodSource("rejected")
  void unsupportedAttributesAreRejected(String op, long[] x, long[] w, List<AttributeProto> attrs, String message) {
    Graph g = new Graph();
    List<Dim> dims = new ArrayList<>();
    for (long d : x) {
      dims.add(Dim.of(d));
    }
    g.addInput("x", TensorType.of(TensorType.FLOAT, dims));
    List<String> in = new ArrayList<>(List.of("x"));
    if (w != null) {
      g.addInput("w", TensorType.of(TensorType.FLOAT, w));
      in.add("w");
    } else if (op.equals("BatchNormalization")) {
      for (String p : List.of("scale", "bias", "mean", "var")) {
        g.addInput(p, TensorType.of(TensorType.FLOAT, x[1]));
        in.add(p);
      }
    }
    String y = g.op("/block/" + op, op, in, attrs.toArray(new AttributeProto[0]));
    String loss = g.op("loss", "ReduceSum", List.of(y), attr("keepdims", 0L));
    ShapeInference.run(g);
    g.types().putIfAbsent(loss, TensorType.of(TensorType.FLOAT));
    if (!g.typeOrThrow(loss).hasRank()) {
      g.types().put(loss, TensorType.of(TensorType.FLOAT));
    }
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, loss, List.of("x")));
    assertTrue(e.getMessage().contains("'/block/" + op + "'"), e.getMessage());
    assertTrue(e.getMessage().contains(message), e.getMessage());
  }
}
