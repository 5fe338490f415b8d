package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Disabled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * One finite-difference check per gradient rule (see {@link GradCheck} for the method). All
 * checks run in float64 with h = 1e-6 and pass when |analytic − numeric| ≤ 1e-6 + 1e-5·|numeric|,
 * except where stated (Erf: ORT's CPU kernel is float32 only).
 */
class GradientRulesTest {
  private static final int F64 = TensorType.DOUBLE;

  static long[] s(long... dims) {
    return dims;
  }

  static TensorProto bools(long[] shape, boolean[] values) {
    byte[] b = new byte[values.length];
    for (int i = 0; i < b.length; i++) {
      b[i] = (byte) (values[i] ? 1 : 0);
    }
    List<Long> dims = new ArrayList<>();
    for (long d : shape) {
      dims.add(d);
    }
    return TensorProto.newBuilder().setName("bools").setDataType(TensorType.BOOL).addAllDims(dims)
        .setRawData(ByteString.copyFrom(b)).build();
  }

  // ---- Registry completeness -------------------------------------------------------------

  @Test
  @org.junit.jupiter.api.parallel.ResourceLock("GradientRegistry.RULES")
  void everyGradientRuleHasAFiniteDifferenceTest() {
    SortedSet<String> covered = new TreeSet<>();
    List<Method> methods = new ArrayList<>();
    // Every class holding @GradientOf checks (add yours here).
    for (Class<?> k : List.of(GradientRulesTest.class, GradientRulesBreadthTest.class, ConvGradientRulesTest.class)) {
      methods.addAll(Arrays.asList(k.getDeclaredMethods()));
    }
    for (Method m : methods) {
      GradientOf of = m.getAnnotation(GradientOf.class);
      boolean isTest = m.isAnnotationPresent(Test.class) || m.isAnnotationPresent(ParameterizedTest.class);
      if (of != null && isTest && !m.isAnnotationPresent(Disabled.class)) {
        covered.addAll(Arrays.asList(of.value()));
      }
    }
    SortedSet<String> missing = new TreeSet<>(GradientRegistry.differentiableOps());
    missing.removeAll(covered);
    assertEquals(new TreeSet<>(), missing, "gradient rules without an enabled finite-difference test");
    SortedSet<String> unknown = new TreeSet<>(covered);
    unknown.removeAll(GradientRegistry.differentiableOps());
    assertEquals(new TreeSet<>(), unknown, "tests naming ops that have no rule");
  }

  // ---- Elementwise binary ops with broadcasting -------------------------------------------

  static Stream<Arguments> binaryCases() {
    List<long[][]> shapes = List.of(
        new long[][] {s(2, 3, 4), s(4)},
        new long[][] {s(2, 3, 4), s(2, 1, 4)},
        new long[][] {s(2, 3, 4), s()},
        new long[][] {s(3, 1), s(1, 4)},
        new long[][] {s(), s(2, 3)},
        new long[][] {s(2, 3), s(2, 3)});
    List<Arguments> out = new ArrayList<>();
    for (String op : List.of("Add", "Sub", "Mul", "Div")) {
      for (long[][] sh : shapes) {
        out.add(Arguments.of(op, sh[0], sh[1]));
      }
    }
    return out.stream();
  }

  @ParameterizedTest(name = "{0} {1} with {2}")
  @MethodSource("binaryCases")
  @GradientOf({"Add", "Sub", "Mul", "Div"})
  void binaryBroadcasting(String op, long[] a, long[] b) {
    GradCheck c = GradCheck.float64(op.hashCode() + 31L * Arrays.hashCode(a) + Arrays.hashCode(b))
        .param("a", a, -1, 1);
    if (op.equals("Div")) {
      c.paramAwayFromZero("b", b, 0.5, 2);
    } else {
      c.param("b", b, -1, 1);
    }
    c.check(op, g -> g.op("n", op, List.of("a", "b")));
  }

  @ParameterizedTest
  @ValueSource(strings = {"Add", "Sub", "Mul", "Div"})
  void binaryWithOneOperandFrozen(String op) {
    GradCheck.float64(7).param("a", s(2, 3), -1, 1).frozen("b", s(3), 0.5, 2)
        .check(op, g -> g.op("n", op, List.of("a", "b")));
    GradCheck.float64(8).frozen("a", s(2, 3), 0.5, 2).param("b", s(3), 0.5, 2)
        .check(op, g -> g.op("n", op, List.of("a", "b")));
  }

  @Test
  void sameValueUsedTwiceAccumulates() {
    // y = x*x + x: three contributions to dx summed.
    GradCheck.float64(9).param("x", s(2, 3), -1, 1)
        .check("Mul", g -> g.op("add", "Add", List.of(g.op("sq", "Mul", List.of("x", "x")), "x")));
  }

  @Test
  @GradientOf("Pow")
  void powBothOperandsBroadcast() {
    GradCheck.float64(10).param("x", s(2, 3), 0.5, 2).param("p", s(3), 0.5, 2.5)
        .check("Pow", g -> g.op("pow", "Pow", List.of("x", "p")));
  }

  @Test
  @GradientOf("Pow")
  void powConstantSquareOfSignedBase() {
    // The LayerNorm form: Pow(d, 2.0) with d of either sign and a constant exponent.
    GradCheck.float64(11).paramAwayFromZero("x", s(2, 3, 4), 0.1, 1.5)
        .check("Pow", g -> g.op("pow", "Pow", List.of("x", g.scalar("two", F64, 2.0))));
  }

  // ---- Unary ops ---------------------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(strings = {"Neg", "Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Sigmoid", "Relu", "Identity"})
  @GradientOf({"Neg", "Sqrt", "Reciprocal", "Exp", "Log", "Tanh", "Sigmoid", "Relu", "Identity"})
  void unary(String op) {
    GradCheck c = GradCheck.float64(op.hashCode());
    switch (op) {
      case "Sqrt", "Log", "Reciprocal" -> c.param("x", s(2, 3, 4), 0.3, 2);
      // Relu: magnitudes ≥ 0.1, so x ± h never crosses the kink.
      case "Relu", "Identity" -> c.paramAwayFromZero("x", s(2, 3, 4), 0.1, 1.5);
      default -> c.param("x", s(2, 3, 4), -2, 2);
    }
    c.check(op, g -> g.op("n", op, List.of("x")));
  }

  /**
   * ORT's CPU Erf kernel is float32 only, so this check runs in float32: h = 1e-2 and
   * |analytic − numeric| ≤ 2e-3 + 2e-2·|numeric| (the truncation error of the central
   * difference is ≈ h²·|f'''|/6 ≤ 1e-4·|R|, rounding ≈ 1e-7·n/h).
   */
  @Test
  @GradientOf("Erf")
  void erfFloat32() {
    GradCheck.float32(12).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 4), -2, 2)
        .check("Erf", g -> g.op("erf", "Erf", List.of("x")));
  }

  /**
   * com.microsoft Gelu (the fused erf-GELU): its CPU kernel is float32 only, so float32 with the
   * tolerances of {@link #erfFloat32}; inputs over [−4, 4] cover both tails and the bend.
   */
  @Test
  @GradientOf(GradientRegistry.MS + "Gelu")
  void fusedGeluFloat32() {
    GradCheck.float32(14).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 4), -4, 4)
        .check("Gelu", g -> g.add("gelu", "Gelu", dev.graft.compiler.ir.Graph.MS_DOMAIN, List.of("x"), 1,
            dev.graft.compiler.ir.Node.attrs()).get(0));
  }

  /**
   * com.microsoft FastGelu (the fused tanh-GELU): float32 only on CPU, so the tolerances of {@link
   * #erfFloat32}; inputs over [−4, 4] cover both tails and the bend.
   */
  @Test
  @GradientOf(GradientRegistry.MS + "FastGelu")
  void fusedTanhGeluFloat32() {
    GradCheck.float32(15).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 4), -4, 4)
        .check("FastGelu", g -> g.add("gelu", "FastGelu", dev.graft.compiler.ir.Graph.MS_DOMAIN, List.of("x"), 1,
            dev.graft.compiler.ir.Node.attrs()).get(0));
  }

  @Test
  @GradientOf("Erf")
  void erfGeluFloat32() {
    // BERT's GELU: x · 0.5 · (1 + erf(x / √2)); same float32 tolerances as erfFloat32.
    int f = TensorType.FLOAT;
    GradCheck.float32(13).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 4), -3, 3)
        .check("Erf", g -> {
          String e = g.op("erf", "Erf", List.of(g.op("div", "Div", List.of("x", g.scalar("sqrt2", f, Math.sqrt(2))))));
          String one = g.op("add", "Add", List.of(e, g.scalar("one", f, 1)));
          return g.op("half", "Mul", List.of(g.op("mul", "Mul", List.of("x", one)), g.scalar("half", f, 0.5)));
        });
  }

  @Test
  @GradientOf("Cast")
  void castDoubleToFloatAndBack() {
    // Values and h on the 2^-10 grid: x ± h is exact in float32, so the float64 tolerance holds.
    GradCheck c = GradCheck.float64(14).step(1.0 / 1024);
    double[] v = GradCheck.fill(12, () -> Math.round((c.random().nextDouble() * 2 - 1) * 512) / 1024.0);
    c.param("x", F64, s(3, 4), v).check("Cast", g -> {
      String f = g.op("to_float", "Cast", List.of("x"), attr("to", (long) TensorType.FLOAT));
      String sq = g.op("sq", "Mul", List.of(f, f));
      return g.op("to_double", "Cast", List.of(sq), attr("to", (long) F64));
    });
  }

  @Test
  @GradientOf("Dropout")
  void dropoutRatioZeroInTrainingMode() {
    GradCheck.float64(15).param("x", s(2, 3, 4), -1, 1).check("Dropout", g -> g.add("drop", "Dropout", "",
        List.of("x", g.scalar("ratio", F64, 0.0), g.constant("training", bools(s(), new boolean[] {true}))), 2,
        dev.graft.compiler.ir.Node.attrs()).get(0));
  }

  /**
   * With ratio 0.5 the mask is random per run, so no finite difference: the gradient must equal
   * R · mask / (1 − ratio) with the mask output of the same run (exact up to 1e-12).
   */
  @Test
  @GradientOf("Dropout")
  void dropoutGradientUsesTheMaskOfTheSameRun() throws Exception {
    GradCheck c = GradCheck.float64(16).param("x", s(4, 8), -1, 1);
    String[] mask = new String[1];
    GradCheck.Built b = c.build("Dropout", g -> {
      List<String> out = g.add("drop", "Dropout", "",
          List.of("x", g.scalar("ratio", F64, 0.5), g.constant("training", bools(s(), new boolean[] {true}))), 2,
          dev.graft.compiler.ir.Node.attrs());
      mask[0] = out.get(1);
      return out.get(0);
    });
    b.graph().outputs().add(mask[0]);
    byte[] model = dev.graft.compiler.ir.OnnxExport.write(b.graph(), "dropout").toByteArray();
    try (OrtSession s = GradCheck.session(model)) {
      Map<String, double[]> out = GradCheck.run(s, c.feeds(Map.of()), List.of(b.grads().get("x"), mask[0]));
      double[] grad = out.get(b.grads().get("x"));
      double[] m = out.get(mask[0]);
      int kept = 0;
      for (int i = 0; i < grad.length; i++) {
        assertEquals(b.r()[i] * m[i] / 0.5, grad[i], 1e-12, "element " + i);
        kept += (int) m[i];
      }
      assertTrue(kept > 0 && kept < grad.length, "the mask drops some elements and keeps some: " + kept);
    }
  }

  // ---- MatMul ------------------------------------------------------------------------------

  static Stream<Arguments> matmulCases() {
    return Stream.of(
        Arguments.of(s(3, 4), s(4, 5)),
        Arguments.of(s(2, 3, 4), s(4, 5)),   // batched activations × 2-D weight (the Gemm path)
        Arguments.of(s(2, 2, 3, 4), s(2, 2, 4, 3)), // attention scores: both operands 4-D
        Arguments.of(s(3, 4), s(2, 4, 5)),   // 2-D × 3-D: A's gradient summed over the batch
        Arguments.of(s(2, 1, 3, 4), s(1, 2, 4, 5))); // batch dims broadcast both ways
  }

  @ParameterizedTest(name = "{0} x {1}")
  @MethodSource("matmulCases")
  @GradientOf("MatMul")
  void matmul(long[] a, long[] b) {
    GradCheck.float64(Arrays.hashCode(a) * 31L + Arrays.hashCode(b)).param("a", a, -1, 1).param("b", b, -1, 1)
        .check("MatMul", g -> g.op("mm", "MatMul", List.of("a", "b")));
  }

  static Stream<Arguments> matmulFloat32Cases() {
    return Stream.of(
        Arguments.of(s(2, 3, 5, 2), s(2, 3, 2, 5)), // attention scores: B's gradient as FusedMatMul(A, g, transA)
        Arguments.of(s(2, 3, 5, 5), s(2, 3, 5, 2)), // probabilities × values: A's last dim is larger than g's, so (gᵀ·A)ᵀ
        Arguments.of(s(2, 1, 6, 4), s(1, 2, 4, 3)), // (gᵀ·A)ᵀ with batch dims broadcast both ways
        Arguments.of(s(6, 4), s(2, 4, 3)));          // 2-D × 3-D, (gᵀ·A)ᵀ: A's gradient summed over the batch
  }

  /**
   * The float32 path (FusedMatMul with transA/transB, and for B's gradient (gᵀ·A)ᵀ where A's
   * last dim is larger than the result's): MatMul is linear in each operand, so central
   * differences with h = 1e-2 are exact up to float32 rounding.
   */
  @ParameterizedTest(name = "{0} x {1}")
  @MethodSource("matmulFloat32Cases")
  @GradientOf("MatMul")
  void matmulFloat32(long[] a, long[] b) {
    GradCheck.float32(Arrays.hashCode(a) * 37L + Arrays.hashCode(b)).step(1e-2).tolerance(1e-3, 1e-2)
        .param("a", a, -1, 1).param("b", b, -1, 1)
        .check("MatMul", g -> g.op("mm", "MatMul", List.of("a", "b")));
  }

  @Test
  @GradientOf("MatMul")
  void matmulWeightOnlyOfBatchedInput() {
    // A frozen 3-D input times a trainable weight: the LoRA / linear-layer case.
    GradCheck.float64(17).frozen("x", s(2, 3, 4), -1, 1).param("w", s(4, 5), -1, 1)
        .check("MatMul", g -> g.op("mm", "MatMul", List.of("x", "w")));
  }

  // ---- Shape ops ---------------------------------------------------------------------------

  @Test
  @GradientOf("Transpose")
  void transposeWithPerm() {
    GradCheck.float64(18).param("x", s(2, 3, 4), -1, 1)
        .check("Transpose", g -> g.op("t", "Transpose", List.of("x"), attr("perm", List.of(1L, 2L, 0L))));
  }

  @Test
  @GradientOf("Transpose")
  void transposeDefaultPermReverses() {
    GradCheck.float64(19).param("x", s(2, 3, 4), -1, 1)
        .check("Transpose", g -> g.op("t", "Transpose", List.of("x")));
  }

  @Test
  @GradientOf("Reshape")
  void reshapeWithZeroAndMinusOne() {
    GradCheck.float64(20).param("x", s(2, 3, 4), -1, 1)
        .check("Reshape", g -> g.op("r", "Reshape", List.of("x", g.longs("shape", List.of(0L, -1L)))));
  }

  @Test
  @GradientOf("Reshape")
  void reshapeSplittingAxes() {
    GradCheck.float64(21).param("x", s(2, 3, 4), -1, 1)
        .check("Reshape", g -> g.op("r", "Reshape", List.of("x", g.longs("shape", List.of(4L, -1L, 2L)))));
  }

  @Test
  @GradientOf("Unsqueeze")
  void unsqueezeFrontAndBack() {
    GradCheck.float64(22).param("x", s(2, 3), -1, 1)
        .check("Unsqueeze", g -> g.op("u", "Unsqueeze", List.of("x", g.longs("axes", List.of(0L, -1L)))));
  }

  @Test
  @GradientOf("Squeeze")
  void squeezeWithAxes() {
    GradCheck.float64(23).param("x", s(2, 1, 3, 1), -1, 1)
        .check("Squeeze", g -> g.op("sq", "Squeeze", List.of("x", g.longs("axes", List.of(1L)))));
  }

  @Test
  @GradientOf("Squeeze")
  void squeezeWithoutAxes() {
    GradCheck.float64(24).param("x", s(2, 1, 3, 1), -1, 1)
        .check("Squeeze", g -> g.op("sq", "Squeeze", List.of("x")));
  }

  @Test
  @GradientOf("Flatten")
  void flatten() {
    GradCheck.float64(25).param("x", s(2, 3, 4), -1, 1)
        .check("Flatten", g -> g.op("f", "Flatten", List.of("x"), attr("axis", 2L)));
  }

  static Stream<Arguments> expandCases() {
    return Stream.of(
        Arguments.of(s(3, 1), s(2, 3, 4)),
        Arguments.of(s(4), s(2, 3, 4)),
        Arguments.of(s(2, 1, 4), s(2, 3, 4)),
        Arguments.of(s(2, 3), s(2, 3)));
  }

  @ParameterizedTest(name = "{0} to {1}")
  @MethodSource("expandCases")
  @GradientOf("Expand")
  void expand(long[] from, long[] to) {
    List<Long> target = Arrays.stream(to).boxed().toList();
    GradCheck.float64(Arrays.hashCode(from)).param("x", from, -1, 1)
        .check("Expand", g -> g.op("e", "Expand", List.of("x", g.longs("shape", target))));
  }

  // ---- Reductions --------------------------------------------------------------------------

  static Stream<Arguments> reduceCases() {
    return Stream.of(
        Arguments.of(List.of(1L), 0L),
        Arguments.of(List.of(1L), 1L),
        Arguments.of(List.of(0L, 2L), 1L),
        Arguments.of(List.of(0L, 2L), 0L),
        Arguments.of(List.of(-1L), 0L),
        Arguments.of(List.of(), 1L),
        Arguments.of(List.of(), 0L));
  }

  @ParameterizedTest(name = "axes {0} keepdims {1}")
  @MethodSource("reduceCases")
  @GradientOf("ReduceSum")
  void reduceSum(List<Long> axes, long keepdims) {
    GradCheck.float64(26 + axes.hashCode() + keepdims).param("x", s(2, 3, 4), -1, 1).check("ReduceSum", g -> {
      List<String> in = axes.isEmpty() ? List.of("x") : List.of("x", g.longs("axes", axes));
      return g.op("rs", "ReduceSum", in, attr("keepdims", keepdims));
    });
  }

  @ParameterizedTest(name = "axes {0} keepdims {1}")
  @MethodSource("reduceCases")
  @GradientOf("ReduceMean")
  void reduceMean(List<Long> axes, long keepdims) {
    GradCheck.float64(27 + axes.hashCode() + keepdims).param("x", s(2, 3, 4), -1, 1).check("ReduceMean", g ->
        axes.isEmpty()
            ? g.op("rm", "ReduceMean", List.of("x"), attr("keepdims", keepdims))
            : g.op("rm", "ReduceMean", List.of("x"), attr("axes", axes), attr("keepdims", keepdims)));
  }

  // ---- Softmax -----------------------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(longs = {-1, 1, 0})
  @GradientOf("Softmax")
  void softmax(long axis) {
    GradCheck.float64(28 + axis).param("x", s(2, 3, 4), -2, 2)
        .check("Softmax", g -> g.op("sm", "Softmax", List.of("x"), attr("axis", axis)));
  }

  /**
   * Float32 over the last axis is the fused {@code dev.graft:SoftmaxGrad} (its function body here,
   * ONNX Runtime running it without Graft's kernels), over another axis the standard-op rule:
   * float32 tolerances of {@link #erfFloat32}.
   */
  @ParameterizedTest
  @ValueSource(longs = {-1, 2, 1})
  @GradientOf("Softmax")
  void softmaxFloat32(long axis) {
    GradCheck.float32(31 + axis).step(1e-2).tolerance(2e-3, 2e-2).param("x", s(2, 3, 4), -2, 2)
        .check("Softmax", g -> g.op("sm", "Softmax", List.of("x"), attr("axis", axis)));
  }

  @ParameterizedTest
  @ValueSource(longs = {-1, 1, 0})
  @GradientOf("LogSoftmax")
  void logSoftmax(long axis) {
    GradCheck.float64(29 + axis).param("x", s(2, 3, 4), -2, 2)
        .check("LogSoftmax", g -> g.op("lsm", "LogSoftmax", List.of("x"), attr("axis", axis)));
  }

  // ---- Concat, Slice, Gather, GatherElements, Where ----------------------------------------

  @Test
  @GradientOf("Concat")
  void concatSeveralDifferentiatedInputs() {
    GradCheck.float64(30).param("a", s(2, 3), -1, 1).frozen("b", s(2, 1), -1, 1).param("c", s(2, 4), -1, 1)
        .check("Concat", g -> g.op("cat", "Concat", List.of("a", "b", "c"), attr("axis", 1L)));
  }

  @Test
  @GradientOf("Concat")
  void concatNegativeAxisAllDifferentiated() {
    GradCheck.float64(31).param("a", s(2, 3, 2), -1, 1).param("b", s(2, 3, 3), -1, 1)
        .check("Concat", g -> g.op("cat", "Concat", List.of("a", "b"), attr("axis", -1L)));
  }

  @Test
  @GradientOf("Concat")
  void concatSameValueTwice() {
    GradCheck.float64(32).param("a", s(2, 3), -1, 1)
        .check("Concat", g -> g.op("cat", "Concat", List.of("a", "a"), attr("axis", 0L)));
  }

  @Test
  @GradientOf("Slice")
  void sliceNegativeIndicesWithAxes() {
    // axis 0: [1, -1) of 4 → rows 1..2; axis 2: [-4, 5) of 6 → 2..4.
    GradCheck.float64(33).param("x", s(4, 5, 6), -1, 1).check("Slice", g -> g.op("sl", "Slice", List.of("x",
        g.longs("starts", List.of(1L, -4L)), g.longs("ends", List.of(-1L, 5L)), g.longs("axes", List.of(0L, 2L)))));
  }

  @Test
  @GradientOf("Slice")
  void sliceLeadingAxesClampedEndNegativeAxis() {
    GradCheck.float64(34).param("x", s(3, 5), -1, 1).check("Slice", g -> g.op("sl", "Slice", List.of("x",
        g.longs("starts", List.of(2L)), g.longs("ends", List.of(1000L)), g.longs("axes", List.of(-1L)))));
    GradCheck.float64(35).param("x", s(3, 5), -1, 1).check("Slice", g -> g.op("sl", "Slice", List.of("x",
        g.longs("starts", List.of(0L, 1L)), g.longs("ends", List.of(2L, 3L)))));
  }

  @Test
  @GradientOf("Gather")
  void gatherEmbeddingRowsWithRepeats() {
    GradCheck.float64(36).retypeUntypedGradients().param("table", s(7, 3), -1, 1).int64("ids", s(2, 4), new long[] {0, 3, 3, 6, 1, 0, 3, 2})
        .check("Gather", g -> g.op("emb", "Gather", List.of("table", "ids"), attr("axis", 0L)));
  }

  @Test
  @GradientOf("Gather")
  void gatherAlongAxisOne() {
    GradCheck.float64(37).retypeUntypedGradients().param("x", s(3, 5, 2), -1, 1).int64("idx", s(2), new long[] {4, 1})
        .check("Gather", g -> g.op("g", "Gather", List.of("x", "idx"), attr("axis", 1L)));
  }

  /** The embedding-table gradient (ScatterND of the rows) must get a type to be a graph output. */
  @Test
  void gatherGradientIsTyped() {
    GradCheck.Built b = GradCheck.float64(44).param("table", s(7, 3), -1, 1).int64("ids", s(2, 4), new long[8])
        .build("Gather", g -> g.op("emb", "Gather", List.of("table", "ids"), attr("axis", 0L)));
    assertEquals(TensorType.of(F64, 7, 3), b.graph().type(b.grads().get("table")));
  }

  @Test
  @GradientOf("GatherElements")
  void gatherElementsAxisOneWithRepeats() {
    GradCheck.float64(38).param("x", s(3, 4), -1, 1).int64("idx", s(3, 2), new long[] {0, 0, 3, 1, 2, 2})
        .check("GatherElements", g -> g.op("ge", "GatherElements", List.of("x", "idx"), attr("axis", 1L)));
  }

  @Test
  @GradientOf("GatherElements")
  void gatherElementsAxisZero() {
    GradCheck.float64(39).param("x", s(3, 4), -1, 1).int64("idx", s(1, 4), new long[] {2, 0, 1, 2})
        .check("GatherElements", g -> g.op("ge", "GatherElements", List.of("x", "idx"), attr("axis", 0L)));
  }

  @Test
  @GradientOf("Where")
  void whereWithBroadcastBranch() {
    GradCheck c = GradCheck.float64(40).param("x", s(3, 4), -1, 1).param("y", s(4), -1, 1);
    boolean[] cond = new boolean[12];
    for (int i = 0; i < cond.length; i++) {
      cond[i] = c.random().nextBoolean();
    }
    c.check("Where", g -> g.op("w", "Where", List.of(g.constant("cond", bools(s(3, 4), cond)), "x", "y")));
  }

  @Test
  @GradientOf("Where")
  void whereWithComputedCondition() {
    // The condition comes from a frozen input through Greater (non-differentiable).
    GradCheck.float64(41).frozen("c", s(3, 4), -1, 1).param("x", s(3, 4), -1, 1).param("y", s(3, 1), -1, 1)
        .check("Where", g -> g.op("w", "Where",
            List.of(g.op("gt", "Greater", List.of("c", g.scalar("zero", F64, 0))), "x", "y")));
  }

  @Test
  @GradientOf("Identity")
  void identityChain() {
    GradCheck.float64(42).param("x", s(2, 3), -1, 1)
        .check("Identity", g -> g.op("i2", "Identity", List.of(g.op("i1", "Identity", List.of("x")))));
  }

  @Test
  void analyticGradientsAreNotTrivial() {
    // Sanity of the harness: R weights every output element, so no gradient element vanishes.
    Map<String, double[]> grads = GradCheck.float64(43).param("x", s(2, 3), -1, 1)
        .check("Tanh", g -> g.op("t", "Tanh", List.of("x")));
    assertTrue(Arrays.stream(grads.get("x")).allMatch(v -> Math.abs(v) > 1e-6), "every element contributes");
  }
}
