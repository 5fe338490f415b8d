package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Finite-difference checks of the breadth rules (issue 3), with {@link GradCheck}: float64,
 * h = 1e-6, |analytic − numeric| ≤ 1e-6 + 1e-5·|numeric| unless a test states otherwise.
 * Opset forms are checked by importing a one-node ONNX model of that opset ({@link #imported})
 * into the graph under test, so the import's normalization is what gets differentiated.
 */
class GradientRulesBreadthTest {
  private static final int F64 = TensorType.DOUBLE;
  private static final int F32 = TensorType.FLOAT;

  static long[] s(long... dims) {
    return dims;
  }

  // ---- Importing opset forms ---------------------------------------------------------------

  static NodeProto node(String op, List<String> in, List<String> out, AttributeProto... attrs) {
    return NodeProto.newBuilder().setName("/m/" + op).setOpType(op).addAllInput(in).addAllOutput(out)
        .addAllAttribute(Arrays.asList(attrs)).build();
  }

  static AttributeProto str(String name, String value) {
    return AttributeProto.newBuilder().setName(name).setType(AttributeProto.AttributeType.STRING)
        .setS(ByteString.copyFromUtf8(value)).build();
  }

  static TensorProto longsInit(String name, long... values) {
    return Tensors.longs(name, Arrays.stream(values).boxed().toList());
  }

  /**
   * Imports a model of {@code opset} made of {@code nodes} and {@code inits} (reading values of
   * {@code g} by name) with {@link OnnxImport#read}, appends its normalized nodes to {@code g}
   * and returns {@code output}.
   */
  static String imported(Graph g, int opset, List<NodeProto> nodes, List<TensorProto> inits, String output) {
    GraphProto.Builder gp = GraphProto.newBuilder().setName("m").addAllNode(nodes).addAllInitializer(inits);
    ModelProto m = ModelProto.newBuilder().setIrVersion(8)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(opset)).setGraph(gp).build();
    Graph h = OnnxImport.read(m);
    h.initializers().forEach((k, v) -> g.addInitializer(v, false));
    h.nodes().forEach(g::addImported);
    g.setSourceOpset(opset);
    return output;
  }

  // ---- Elementwise unary -------------------------------------------------------------------

  @Test
  @GradientOf("Abs")
  void abs() {
    // Magnitudes ≥ 0.1: x ± h never crosses the kink at 0.
    GradCheck.float64(101).paramAwayFromZero("x", s(2, 3, 4), 0.1, 2)
        .check("Abs", g -> g.op("abs", "Abs", List.of("x")));
  }

  @ParameterizedTest
  @ValueSource(strings = {"Sin", "Cos"})
  @GradientOf({"Sin", "Cos"})
  void sinCos(String op) {
    GradCheck.float64(op.hashCode()).param("x", s(2, 3, 4), -4, 4).check(op, g -> g.op("n", op, List.of("x")));
  }

  @ParameterizedTest
  @ValueSource(floats = {0.01f, 0.2f, -1f})
  @GradientOf("LeakyRelu")
  void leakyRelu(float alpha) {
    GradCheck.float64(102).paramAwayFromZero("x", s(2, 3, 4), 0.1, 2).check("LeakyRelu", g -> alpha == 0.01f
        ? g.op("lr", "LeakyRelu", List.of("x"))
        : g.op("lr", "LeakyRelu", List.of("x"), attr("alpha", alpha)));
  }

  // ---- Clip --------------------------------------------------------------------------------

  static Stream<Arguments> clipCases() {
    return Stream.of(Arguments.of(true, true), Arguments.of(true, false), Arguments.of(false, true),
        Arguments.of(false, false));
  }

  @ParameterizedTest(name = "min {0} max {1}")
  @MethodSource("clipCases")
  @GradientOf("Clip")
  void clipWithConstantBounds(boolean min, boolean max) {
    GradCheck.float64(103).param("x", s(3, 4), -2, 2).check("Clip", g -> {
      List<String> in = new ArrayList<>(List.of("x", min ? g.scalar("min", F64, -0.5) : ""));
      if (max) {
        in.add(g.scalar("max", F64, 0.7));
      }
      return g.op("clip", "Clip", in);
    });
  }

  @Test
  @GradientOf("Clip")
  void clipBoundsAreDifferentiated() {
    GradCheck.float64(104).param("x", s(3, 4), -2, 2).param("lo", s(), -0.6, -0.4).param("hi", s(), 0.4, 0.6)
        .check("Clip", g -> g.op("clip", "Clip", List.of("x", "lo", "hi")));
  }

  @Test
  @GradientOf("Clip")
  void clipAttributeFormOfOpset10IsImported() {
    GradCheck.float64(105).param("x", s(3, 4), -2, 2).check("Clip", g -> imported(g, 10,
        List.of(node("Clip", List.of("x"), List.of("y"), attr("min", -0.5f), attr("max", 0.7f))), List.of(), "y"));
  }

  // ---- Min / Max ---------------------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {"Min", "Max"})
  @GradientOf({"Min", "Max"})
  void minMaxVariadicBroadcasting(String op) {
    GradCheck.float64(op.hashCode() + 1).param("a", s(2, 3, 4), -1, 1).param("b", s(3, 1), -1, 1)
        .param("c", s(4), -1, 1).check(op, g -> g.op("m", op, List.of("a", "b", "c")));
  }

  @ParameterizedTest
  @ValueSource(strings = {"Min", "Max"})
  @GradientOf({"Min", "Max"})
  void minMaxSingleInputAndFrozenOperand(String op) {
    GradCheck.float64(op.hashCode() + 2).param("a", s(2, 3), -1, 1).check(op, g -> g.op("m", op, List.of("a")));
    GradCheck.float64(op.hashCode() + 3).param("a", s(2, 3), -1, 1).frozen("b", s(3), -1, 1)
        .check(op, g -> g.op("m", op, List.of("a", "b")));
  }

  /**
   * Ties split the gradient evenly; at a two-way tie that equals the central difference (each
   * input moved by ±h moves the extremum by h on one side only), so the check covers it.
   */
  @ParameterizedTest
  @ValueSource(strings = {"Min", "Max"})
  @GradientOf({"Min", "Max"})
  void minMaxTwoWayTiesSplitEvenly(String op) {
    GradCheck c = GradCheck.float64(op.hashCode() + 4);
    double[] a = c.uniform(s(2, 3), -1, 1);
    double[] b = c.uniform(s(2, 3), -1, 1);
    b[0] = a[0];
    b[4] = a[4];
    Map<String, double[]> grads = c.param("a", F64, s(2, 3), a).param("b", F64, s(2, 3), b)
        .check(op, g -> g.op("m", op, List.of("a", "b")));
    assertEquals(grads.get("a")[0], grads.get("b")[0], 1e-15, "a tie shares equally");
  }

  // ---- ReduceMax and reductions' axes forms -------------------------------------------------

  static Stream<Arguments> reduceCases() {
    return Stream.of(
        Arguments.of(List.of(1L), 0L),
        Arguments.of(List.of(1L), 1L),
        Arguments.of(List.of(0L, 2L), 1L),
        Arguments.of(List.of(-1L), 0L),
        Arguments.of(List.of(), 1L),
        Arguments.of(List.of(), 0L));
  }

  @ParameterizedTest(name = "axes {0} keepdims {1}")
  @MethodSource("reduceCases")
  @GradientOf("ReduceMax")
  void reduceMax(List<Long> axes, long keepdims) {
    GradCheck.float64(106 + axes.hashCode() + keepdims).param("x", s(2, 3, 4), -1, 1).check("ReduceMax", g ->
        axes.isEmpty()
            ? g.op("rm", "ReduceMax", List.of("x"), attr("keepdims", keepdims))
            : g.op("rm", "ReduceMax", List.of("x"), attr("axes", axes), attr("keepdims", keepdims)));
  }

  @ParameterizedTest
  @ValueSource(longs = {0, 1})
  @GradientOf("ReduceMax")
  void reduceMaxTwoWayTiesSplitEvenlyThreeWayTiesToo(long keepdims) {
    // Row 0 has a two-way tie (the central difference is 1/2 there, as the rule's share);
    // row 1 a three-way tie, where the rule gives 1/3 each (checked directly, not by differences).
    double[] x = {0.3, 0.9, -0.2, 0.9, 0.5, 0.1, 0.7, -0.4, 0.7, 0.7, 0.2, 0.7};
    GradCheck.float64(107).param("x", F64, s(2, 4), Arrays.copyOf(x, 8)).check("ReduceMax",
        g -> g.op("rm", "ReduceMax", List.of("x"), attr("axes", List.of(1L)), attr("keepdims", keepdims)));
    GradCheck c = GradCheck.float64(107);
    GradCheck.Built b = c.param("x", F64, s(3, 4), x).build("ReduceMax",
        g -> g.op("rm", "ReduceMax", List.of("x"), attr("axes", List.of(1L)), attr("keepdims", keepdims)));
    try (var session = GradCheck.session(dev.graft.compiler.ir.OnnxExport.write(b.graph(), "t").toByteArray())) {
      double[] grad = GradCheck.run(session, c.feeds(Map.of()), List.of(b.grads().get("x"))).get(b.grads().get("x"));
      double[] r = b.r();
      double[] want = {0, r[0] / 2, 0, r[0] / 2, 0, 0, r[1], 0, r[2] / 3, r[2] / 3, 0, r[2] / 3};
      for (int i = 0; i < want.length; i++) {
        assertEquals(want[i], grad[i], 1e-12, "element " + i);
      }
    } catch (ai.onnxruntime.OrtException e) {
      throw new AssertionError(e);
    }
  }

  static Stream<Arguments> reduceForms() {
    List<Arguments> out = new ArrayList<>();
    for (String op : List.of("ReduceSum", "ReduceMean", "ReduceMax")) {
      for (int opset : new int[] {11, 13, 17, 18}) {
        for (long keepdims : new long[] {0, 1}) {
          out.add(Arguments.of(op, opset, keepdims));
        }
      }
    }
    return out.stream();
  }

  /** Axes as attribute (ReduceSum < 13, the others < 18) and as input (later), as imported. */
  @ParameterizedTest(name = "{0} opset {1} keepdims {2}")
  @MethodSource("reduceForms")
  @GradientOf({"ReduceSum", "ReduceMean", "ReduceMax"})
  void reductionAxesFormsOnImport(String op, int opset, long keepdims) {
    boolean asInput = op.equals("ReduceSum") ? opset >= 13 : opset >= 18;
    GradCheck.float64(108 + opset).param("x", s(2, 3, 4), -1, 1).check(op, g -> imported(g, opset,
        List.of(asInput
            ? node(op, List.of("x", "axes"), List.of("y"), attr("keepdims", keepdims))
            : node(op, List.of("x"), List.of("y"), attr("axes", List.of(0L, -1L)), attr("keepdims", keepdims))),
        asInput ? List.of(longsInit("axes", 0, -1)) : List.of(), "y"));
  }

  // ---- Tile, Trilu, Pad --------------------------------------------------------------------

  @Test
  @GradientOf("Tile")
  void tile() {
    GradCheck.float64(109).param("x", s(2, 3, 2), -1, 1)
        .check("Tile", g -> g.op("t", "Tile", List.of("x", g.longs("reps", List.of(2L, 1L, 3L)))));
  }

  static Stream<Arguments> triluCases() {
    return Stream.of(Arguments.of(1L, null), Arguments.of(0L, null), Arguments.of(1L, 1L),
        Arguments.of(0L, -1L), Arguments.of(1L, -2L));
  }

  @ParameterizedTest(name = "upper {0} k {1}")
  @MethodSource("triluCases")
  @GradientOf("Trilu")
  void trilu(long upper, Long k) {
    GradCheck.float64(110 + upper).param("x", s(2, 3, 4), -1, 1).check("Trilu", g -> g.op("tr", "Trilu",
        k == null ? List.of("x") : List.of("x", g.constant("k", Tensors.longs("k", List.of(), List.of(k)))),
        attr("upper", upper)));
  }

  @Test
  @GradientOf("Pad")
  void padConstantPositiveAndNegativePads() {
    GradCheck.float64(111).param("x", s(2, 3, 4), -1, 1).check("Pad", g -> g.op("p", "Pad",
        List.of("x", g.longs("pads", List.of(1L, 0L, 2L, 0L, -1L, 1L)))));
  }

  @Test
  @GradientOf("Pad")
  void padConstantValueIsDifferentiated() {
    GradCheck.float64(112).param("x", s(2, 3), -1, 1).param("v", s(), -1, 1).check("Pad", g -> g.op("p", "Pad",
        List.of("x", g.longs("pads", List.of(1L, 2L, 0L, 1L)), "v"), str("mode", "constant")));
  }

  @Test
  @GradientOf("Pad")
  void padAxesInputOfOpset18IsFolded() {
    GradCheck.float64(113).param("x", s(2, 3, 4), -1, 1).param("v", s(), -1, 1).check("Pad", g -> imported(g, 18,
        List.of(node("Pad", List.of("x", "pads", "v", "axes"), List.of("y"))),
        List.of(longsInit("pads", 2, 1, 0, 3), longsInit("axes", -1, 0)), "y"));
  }

  @Test
  void padReflectIsRefusedNamingTheNode() {
    MissingGradientException e = assertThrows(MissingGradientException.class, () -> GradCheck.float64(114)
        .param("x", s(3, 4), -1, 1).build("Pad", g -> g.op("p", "Pad",
            List.of("x", g.longs("pads", List.of(0L, 1L, 0L, 1L))), str("mode", "reflect"))));
    assertTrue(e.getMessage().contains("'reflect'") && e.getMessage().contains("'p'"), e.getMessage());
  }

  // ---- Split -------------------------------------------------------------------------------

  @Test
  @GradientOf("Split")
  void splitInputSizesOnlySecondOutputUsed() {
    GradCheck.float64(115).param("x", s(2, 5), -1, 1).check("Split", g -> g.add("sp", "Split", "",
        List.of("x", g.longs("split", List.of(2L, 3L))), 2, Node.attrs(attr("axis", 1L))).get(1));
  }

  @Test
  @GradientOf("Split")
  void splitEvenAllOutputsUsed() {
    GradCheck.float64(116).param("x", s(6, 2), -1, 1).check("Split", g -> {
      List<String> parts = g.add("sp", "Split", "", List.of("x"), 3, Node.attrs());
      return g.op("add", "Add", List.of(parts.get(0), g.op("m", "Mul", List.of(parts.get(1), parts.get(2)))));
    });
  }

  @Test
  @GradientOf("Split")
  void splitAttributeFormOfOpset11() {
    GradCheck.float64(117).param("x", s(3, 5), -1, 1).check("Split", g -> imported(g, 11,
        List.of(node("Split", List.of("x"), List.of("a", "b", "c"), attr("axis", -1L), attr("split", List.of(1L, 3L, 1L))),
            node("Mul", List.of("c", "b"), List.of("y"))), List.of(), "y"));
  }

  @Test
  @GradientOf("Split")
  void splitNumOutputsOfOpset18Uneven() {
    // 5 into 2 outputs: sizes 3 and 2 (ceil, the last smaller); only the last is used.
    GradCheck.float64(118).param("x", s(5, 2), -1, 1).check("Split", g -> imported(g, 18,
        List.of(node("Split", List.of("x"), List.of("a", "b"), attr("num_outputs", 2L))), List.of(), "b"));
  }

  // ---- Einsum ------------------------------------------------------------------------------

  static Stream<Arguments> einsumCases() {
    return Stream.of(
        Arguments.of("bhqd,bhkd->bhqk", s(2, 2, 3, 4), s(2, 2, 5, 4)),
        Arguments.of("bhqk,bhkd->bhqd", s(2, 2, 3, 5), s(2, 2, 5, 4)),
        Arguments.of("bid,jd->bij", s(2, 3, 4), s(5, 4)),
        Arguments.of("ij,jk->ik", s(3, 4), s(4, 5)),
        Arguments.of("ij,jk", s(3, 4), s(4, 5)),
        Arguments.of("bij , bjk", s(2, 3, 4), s(2, 4, 2)),
        Arguments.of("ij,ij->", s(3, 4), s(3, 4)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("einsumCases")
  @GradientOf("Einsum")
  void einsum(String equation, long[] a, long[] b) {
    GradCheck.float64(equation.hashCode()).param("a", a, -1, 1).param("b", b, -1, 1)
        .check("Einsum", g -> g.op("es", "Einsum", List.of("a", "b"), str("equation", equation)));
  }

  @ParameterizedTest
  @ValueSource(strings = {"ii,ij->j", "...ij,...jk->...ik", "ij,kl->ij", "i->i"})
  void unsupportedEinsumIsAClearError(String equation) {
    Graph g = new Graph();
    g.addInput("a", equation.equals("i->i") ? TensorType.of(F64, 3) : TensorType.of(F64, 3, 3));
    g.addInput("b", TensorType.of(F64, 3, 3));
    String y = g.op("es", "Einsum", equation.equals("i->i") ? List.of("a") : List.of("a", "b"),
        str("equation", equation));
    String loss = g.op("sum", "ReduceSum", List.of(y), attr("keepdims", 0L));
    // The type a host's value_info would declare where shape inference cannot tell (ellipsis).
    g.types().put(y, equation.contains("j") ? TensorType.of(F64, 3, 3) : TensorType.of(F64, 3));
    dev.graft.compiler.ir.ShapeInference.run(g);
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, loss, List.of("a")));
    assertTrue(e.getMessage().contains("'" + equation + "'") && e.getMessage().contains("'es'"), e.getMessage());
  }

  // ---- Softmax / LogSoftmax across opsets --------------------------------------------------

  static Stream<Arguments> softmaxForms() {
    List<Arguments> out = new ArrayList<>();
    for (String op : List.of("Softmax", "LogSoftmax")) {
      for (int opset : new int[] {11, 13}) {
        for (long axis : new long[] {0, 1, -1}) {
          out.add(Arguments.of(op, opset, axis));
        }
      }
    }
    return out.stream();
  }

  /** Opset 11's coerced-2-D semantics (axis 1 of a rank-3 input spans the last two axes) and 13's. */
  @ParameterizedTest(name = "{0} opset {1} axis {2}")
  @MethodSource("softmaxForms")
  @GradientOf({"Softmax", "LogSoftmax"})
  void softmaxImportedAtOpset11And13(String op, int opset, long axis) {
    GradCheck.float64(120 + opset + axis).param("x", s(2, 3, 4), -2, 2).check(op, g -> imported(g, opset,
        List.of(node(op, List.of("x"), List.of("y"), attr("axis", axis))), List.of(), "y"));
  }

  @Test
  void softmaxOpset11AxisOneNormalizesOverTheLastTwoAxes() throws Exception {
    GradCheck c = GradCheck.float64(121).param("x", s(2, 3, 4), -2, 2);
    GradCheck.Built b = c.build("Softmax", g -> imported(g, 11,
        List.of(node("Softmax", List.of("x"), List.of("y"), attr("axis", 1L))), List.of(), "y"));
    b.graph().outputs().add(b.y());
    try (var session = GradCheck.session(dev.graft.compiler.ir.OnnxExport.write(b.graph(), "t").toByteArray())) {
      double[] y = GradCheck.run(session, c.feeds(Map.of()), List.of(b.y())).get(b.y());
      assertEquals(1.0, Arrays.stream(y, 0, 12).sum(), 1e-12, "sums to 1 over 3×4");
    }
  }

  // ---- LayerNormalization ------------------------------------------------------------------

  static Stream<Arguments> layerNormCases() {
    return Stream.of(Arguments.of(-1L, true, 1), Arguments.of(1L, false, 1), Arguments.of(-2L, true, 3),
        Arguments.of(2L, false, 3));
  }

  /**
   * X, Scale and B differentiated in float64: with one output (stash type float64), and with
   * the Mean/InvStdDev outputs in the default stash type float (the rule recomputes the
   * statistics in float64 then, since it uses them only in X's precision).
   */
  @ParameterizedTest(name = "axis {0} bias {1} outputs {2}")
  @MethodSource("layerNormCases")
  @GradientOf("LayerNormalization")
  void layerNormalization(long axis, boolean bias, int outputs) {
    long[] x = s(2, 3, 4);
    int a = (int) (axis < 0 ? axis + 3 : axis);
    long[] norm = Arrays.copyOfRange(x, a, 3);
    GradCheck c = GradCheck.float64(122 + axis).param("x", x, -2, 2).param("scale", norm, 0.5, 1.5);
    if (bias) {
      c.param("b", norm, -1, 1);
    }
    c.check("LayerNormalization", g -> g.add("ln", "LayerNormalization", "",
        bias ? List.of("x", "scale", "b") : List.of("x", "scale"), outputs,
        outputs == 1
            ? Node.attrs(attr("axis", axis), attr("epsilon", 1e-3f), attr("stash_type", (long) F64))
            : Node.attrs(attr("axis", axis), attr("epsilon", 1e-3f))).get(0));
  }

  /**
   * The float32 host form (stash type float, Mean/InvStdDev outputs present and used by the
   * rule): h = 1e-2, |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|.
   */
  @Test
  @GradientOf("LayerNormalization")
  void layerNormalizationFloat32WithStatsOutputs() {
    GradCheck.float32(123).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 8), -2, 2)
        .param("scale", s(8), 0.5, 1.5).param("b", s(8), -1, 1)
        .check("LayerNormalization", g -> g.add("ln", "LayerNormalization", "", List.of("x", "scale", "b"), 3,
            Node.attrs(attr("axis", -1L))).get(0));
  }

  /**
   * SimplifiedLayerNormalization (the fused RMSNorm), float32 with and without its inv_std_var
   * output (the rule reads it, or recomputes it): h = 1e-2, |analytic − numeric| ≤ 2e-3 +
   * 2e-2·|numeric|.
   */
  @ParameterizedTest(name = "outputs {0}")
  @ValueSource(ints = {1, 2})
  @GradientOf("SimplifiedLayerNormalization")
  void simplifiedLayerNormalizationFloat32(int outputs) {
    GradCheck.float32(126 + outputs).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 8), -2, 2)
        .param("scale", s(8), 0.5, 1.5)
        .check("SimplifiedLayerNormalization", g -> g.add("rms", "SimplifiedLayerNormalization", "",
            List.of("x", "scale"), outputs, Node.attrs(attr("axis", -1L), attr("epsilon", 1e-3f))).get(0));
  }

  // ---- Gelu (opset 20 and torch's decompositions) ------------------------------------------

  /**
   * Gelu-20 is decomposed at import; the erf form runs in float32 (ORT's Erf kernel is float
   * only): h = 1e-2, |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric|.
   */
  @ParameterizedTest
  @ValueSource(strings = {"none", "tanh", ""})
  @GradientOf({"Erf", "Tanh", "CastLike"})
  void geluOpset20IsDecomposedOnImport(String approximate) {
    GradCheck.float32(124).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 4), -3, 3).check("Mul", g -> imported(g, 20,
        List.of(approximate.isEmpty() ? node("Gelu", List.of("x"), List.of("y"))
            : node("Gelu", List.of("x"), List.of("y"), str("approximate", approximate))), List.of(), "y"));
  }

  @Test
  void geluOpset20MatchesItsDefinition() throws Exception {
    double[] x = {-2.5, -1, -0.25, 0, 0.5, 1.5, 3};
    for (String approximate : List.of("none", "tanh")) {
      GradCheck c = GradCheck.float32(125).param("x", F32, s(x.length), x);
      GradCheck.Built b = c.build("Mul", g -> imported(g, 20,
          List.of(node("Gelu", List.of("x"), List.of("y"), str("approximate", approximate))), List.of(), "y"));
      b.graph().outputs().add(b.y());
      double[] y;
      try (var session = GradCheck.session(dev.graft.compiler.ir.OnnxExport.write(b.graph(), "t").toByteArray())) {
        y = GradCheck.run(session, c.feeds(Map.of()), List.of(b.y())).get(b.y());
      }
      for (int i = 0; i < x.length; i++) {
        double v = x[i];
        double want = approximate.equals("none")
            ? 0.5 * v * (1 + erf(v / Math.sqrt(2)))
            : 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
        assertEquals(want, y[i], 1e-5, approximate + " at " + v);
      }
    }
  }

  /** Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7), enough for a 1e-5 check. */
  static double erf(double x) {
    double t = 1 / (1 + 0.3275911 * Math.abs(x));
    double p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return Math.signum(x) * (1 - p * Math.exp(-x * x));
  }

  @Test
  @GradientOf({"Tanh", "Pow"})
  void geluTanhFormAsTorchExportsIt() {
    // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), x³ as Pow(x, 3).
    GradCheck.float64(126).param("x", s(2, 3, 4), -3, 3).check("Tanh", g -> {
      String cube = g.op("pow", "Pow", List.of("x", g.scalar("three", F64, 3)));
      String poly = g.op("add", "Add", List.of("x", g.op("mul", "Mul", List.of(cube, g.scalar("c", F64, 0.044715)))));
      String t = g.op("tanh", "Tanh", List.of(g.op("scale", "Mul", List.of(poly, g.scalar("k", F64, Math.sqrt(2 / Math.PI))))));
      String one = g.op("one", "Add", List.of(t, g.scalar("1", F64, 1)));
      return g.op("out", "Mul", List.of(g.op("half", "Mul", List.of("x", g.scalar("h", F64, 0.5))), one));
    });
  }

  // ---- RMSNormalization (opset 23 and Llama's decomposition) -------------------------------

  @ParameterizedTest
  @ValueSource(longs = {-1, 1, -2})
  @GradientOf({"Flatten", "ReduceMean", "Reciprocal", "Sqrt"})
  void rmsNormalizationOpset23IsDecomposedOnImport(long axis) {
    long[] x = s(2, 3, 4);
    long[] norm = Arrays.copyOfRange(x, (int) (axis < 0 ? axis + 3 : axis), 3);
    GradCheck.float64(127 + axis).param("x", x, -2, 2).param("scale", norm, 0.5, 1.5).check("Flatten",
        g -> imported(g, 23, List.of(node("RMSNormalization", List.of("x", "scale"), List.of("y"),
            attr("axis", axis), attr("epsilon", 1e-3f))), List.of(), "y"));
  }

  @Test
  @GradientOf({"Pow", "ReduceMean", "Sqrt", "Reciprocal", "Div"})
  void rmsNormalizationAsLlamaExportsIt() {
    GradCheck.float64(128).param("x", s(2, 3, 4), -2, 2).param("w", s(4), 0.5, 1.5).check("ReduceMean", g -> {
      String ms = g.op("rm", "ReduceMean", List.of(g.op("pow", "Pow", List.of("x", g.scalar("two", F64, 2)))),
          attr("axes", List.of(-1L)), attr("keepdims", 1L));
      String rs = g.op("rec", "Reciprocal", List.of(g.op("sqrt", "Sqrt", List.of(g.op("add", "Add",
          List.of(ms, g.scalar("eps", F64, 1e-6)))))));
      String normed = g.op("div", "Div", List.of(g.op("mulx", "Mul", List.of("x", rs)), g.scalar("one", F64, 1)));
      return g.op("mulw", "Mul", List.of("w", normed));
    });
  }

  // ---- Slice, Squeeze/Unsqueeze forms, CastLike --------------------------------------------

  static Stream<Arguments> sliceCases() {
    return Stream.of(
        Arguments.of(List.of(0L), List.of(6L), List.of(0L), List.of(2L)),
        Arguments.of(List.of(-1L), List.of(Long.MIN_VALUE), List.of(0L), List.of(-1L)),
        Arguments.of(List.of(5L, 3L), List.of(0L, -100L), List.of(0L, -1L), List.of(-2L, -3L)),
        Arguments.of(List.of(1L, 0L), List.of(-1L, 4L), null, List.of(1L, 3L)),
        Arguments.of(List.of(1L, 1L), List.of(100L, 3L), null, null));
  }

  @ParameterizedTest(name = "starts {0} ends {1} axes {2} steps {3}")
  @MethodSource("sliceCases")
  @GradientOf("Slice")
  void sliceAnyStep(List<Long> starts, List<Long> ends, List<Long> axes, List<Long> steps) {
    GradCheck.float64(129 + starts.hashCode()).param("x", s(6, 5), -1, 1).check("Slice", g -> {
      List<String> in = new ArrayList<>(List.of("x", g.longs("starts", starts), g.longs("ends", ends)));
      if (axes != null || steps != null) {
        in.add(axes == null ? "" : g.longs("axes", axes));
      }
      if (steps != null) {
        in.add(g.longs("steps", steps));
      }
      return g.op("sl", "Slice", in);
    });
  }

  @Test
  @GradientOf({"Squeeze", "Unsqueeze"})
  void squeezeUnsqueezeAttributeFormsOfOpset11() {
    GradCheck.float64(130).param("x", s(2, 1, 3), -1, 1).check("Unsqueeze", g -> imported(g, 11, List.of(
        node("Squeeze", List.of("x"), List.of("s"), attr("axes", List.of(1L))),
        node("Unsqueeze", List.of("s"), List.of("y"), attr("axes", List.of(0L, 3L)))), List.of(), "y"));
  }

  @Test
  @GradientOf("CastLike")
  void castLikeToFloatAndBack() {
    // Values and h on the 2^-10 grid, as the Cast test: x ± h is exact in float32.
    GradCheck c = GradCheck.float64(131).step(1.0 / 1024);
    double[] v = GradCheck.fill(6, () -> Math.round((c.random().nextDouble() * 2 - 1) * 512) / 1024.0);
    c.param("x", F64, s(2, 3), v).check("CastLike", g -> {
      String f = g.op("to_float", "CastLike", List.of("x", g.scalar("f", F32, 0)));
      return g.op("back", "CastLike", List.of(g.op("sq", "Mul", List.of(f, f)), "x"));
    });
  }

  @Test
  void isNanAndIsInfPassShapeAndConditionsThrough() {
    // y = Where(IsNaN(x) or IsInf(x), 0, x): the comparison sub-graph is non-differentiable.
    GradCheck.float64(132).param("x", s(2, 3), -1, 1).check("Where", g -> g.op("w", "Where", List.of(
        g.op("or", "Or", List.of(g.op("nan", "IsNaN", List.of("x")), g.op("inf", "IsInf", List.of("x")))),
        g.scalar("z", F64, 0), "x")));
  }

  @Test
  void opsetNewerOpsWithoutAnOpset17FormAreListed() {
    GraphProto gp = GraphProto.newBuilder().setName("m")
        .addNode(node("RotaryEmbedding", List.of("x", "c", "s"), List.of("r")))
        .addNode(node("RMSNormalization", List.of("r", "w"), List.of("y")))
        .addNode(node("Pad", List.of("y", "p"), List.of("z"), str("mode", "wrap"))).build();
    Graph h = OnnxImport.read(ModelProto.newBuilder().setIrVersion(10)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(23)).setGraph(gp).build());
    assertEquals(List.of("RotaryEmbedding at node '/m/RotaryEmbedding'", "Pad at node '/m/Pad'"),
        OnnxImport.newerThanOpset17(h), "RMSNormalization is decomposed, the others have no opset-17 form");
    assertTrue(h.nodes().stream().noneMatch(n -> n.opType().equals("RMSNormalization")));
  }
}
