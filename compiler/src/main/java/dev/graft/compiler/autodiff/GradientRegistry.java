package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.ir.TensorType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * The one registry of gradient rules, keyed by ai.onnx op type (nodes are normalized to opset
 * 17 on import, so each op has one form). Ops whose outputs carry no gradient (shape
 * arithmetic, comparisons, constants) are registered as non-differentiable.
 */
public final class GradientRegistry {
  private static final Map<String, GradientRule> RULES = new TreeMap<>();
  private static final SortedSet<String> NON_DIFFERENTIABLE =
      new TreeSet<>(
          Set.of(
              "Constant", "Shape", "Size", "ConstantOfShape", "Range", "Equal", "Less",
              "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "ArgMax",
              "ArgMin", "NonZero", "OneHot", "Floor", "Ceil", "Round", "Sign"));

  static {
    RULES.put("Identity", (n, g, c) -> List.of(g.get(0)));
    RULES.put("Add", (n, g, c) -> binary(n, g.get(0), c, g.get(0), g.get(0)));
    RULES.put("Sub", (n, g, c) -> binary(n, g.get(0), c, g.get(0), c.needs(1) ? c.neg(g.get(0)) : null));
    RULES.put("Mul", (n, g, c) -> binary(n, g.get(0), c,
        c.needs(0) ? c.mul(g.get(0), n.input(1)) : null,
        c.needs(1) ? c.mul(g.get(0), n.input(0)) : null));
    RULES.put("Div", (n, g, c) -> binary(n, g.get(0), c,
        c.needs(0) ? c.op("Div", List.of(g.get(0), n.input(1))) : null,
        // d(a/b)/db = -(a/b)/b
        c.needs(1) ? c.neg(c.op("Div", List.of(c.mul(g.get(0), n.output(0)), n.input(1)))) : null));
    RULES.put("Pow", GradientRegistry::pow);
    RULES.put("Neg", (n, g, c) -> List.of(c.neg(g.get(0))));
    RULES.put("Sqrt", (n, g, c) -> List.of(
        c.op("Div", List.of(c.mul(g.get(0), c.scalar(0.5, n.output(0))), n.output(0)))));
    RULES.put("Reciprocal", (n, g, c) -> List.of(
        c.neg(c.mul(g.get(0), c.mul(n.output(0), n.output(0))))));
    RULES.put("Exp", (n, g, c) -> List.of(c.mul(g.get(0), n.output(0))));
    RULES.put("Log", (n, g, c) -> List.of(c.op("Div", List.of(g.get(0), n.input(0)))));
    RULES.put("Erf", (n, g, c) -> {
      // d erf(x)/dx = 2/sqrt(pi) * exp(-x^2)
      String x = n.input(0);
      String e = c.op("Exp", List.of(c.neg(c.mul(x, x))));
      return List.of(c.mul(g.get(0), c.mul(e, c.scalar(2 / Math.sqrt(Math.PI), x))));
    });
    RULES.put("Tanh", (n, g, c) -> {
      String y = n.output(0);
      return List.of(c.mul(g.get(0), c.op("Sub", List.of(c.scalar(1, y), c.mul(y, y)))));
    });
    RULES.put("Sigmoid", (n, g, c) -> {
      String y = n.output(0);
      return List.of(c.mul(g.get(0), c.mul(y, c.op("Sub", List.of(c.scalar(1, y), y)))));
    });
    RULES.put("Relu", (n, g, c) -> {
      String x = n.input(0);
      String positive = c.op("Greater", List.of(x, c.scalar(0, x)));
      return List.of(c.op("Where", List.of(positive, g.get(0), c.scalar(0, x))));
    });
    RULES.put("Cast", (n, g, c) -> {
      TensorType from = c.type(n.input(0));
      return List.of(from.isFloating() ? c.op("Cast", List.of(g.get(0)), attr("to", (long) from.elemType())) : null);
    });
    RULES.put("Dropout", (n, g, c) -> {
      // Inference mode (training_mode absent or false) is the identity; training mode is
      // y = x * mask / (1 - ratio), ratio defaulting to 0.5.
      List<Long> mode = n.hasInput(2) ? c.constLongs(n.input(2)) : List.of(0L);
      if (mode != null && mode.get(0) == 0) {
        return nullsAfter(1, n, g.get(0));
      }
      if (n.outputs().size() < 2 || n.output(1).isEmpty()) {
        throw new MissingGradientException(n, "Dropout in a differentiated graph must output its mask");
      }
      String x = n.input(0);
      String ratio = n.hasInput(1) ? n.input(1) : c.scalar(0.5, x);
      String mask = c.op("Cast", List.of(n.output(1)), attr("to", (long) c.type(x).elemType()));
      String scaled = c.op("Div", List.of(mask, c.op("Sub", List.of(c.scalar(1, x), ratio))));
      return nullsAfter(1, n, c.mul(g.get(0), scaled));
    });
    RULES.put("MatMul", GradientRegistry::matmul);
    RULES.put("Transpose", (n, g, c) -> {
      List<Long> perm = n.attrInts("perm");
      int rank = c.type(n.input(0)).rank();
      long[] inverse = new long[rank];
      for (int i = 0; i < rank; i++) {
        int p = perm == null ? rank - 1 - i : (int) (long) perm.get(i);
        inverse[p] = i;
      }
      return List.of(c.op("Transpose", List.of(g.get(0)), attr("perm", longList(inverse))));
    });
    GradientRule reshapeBack = (n, g, c) -> nullsAfter(1, n,
        c.op("Reshape", List.of(g.get(0), c.shape(n.input(0)))));
    RULES.put("Reshape", reshapeBack);
    RULES.put("Unsqueeze", reshapeBack);
    RULES.put("Squeeze", reshapeBack);
    RULES.put("Flatten", reshapeBack);
    RULES.put("Expand", (n, g, c) -> nullsAfter(1, n, c.unbroadcast(g.get(0), c.type(n.output(0)), n.input(0))));
    RULES.put("ReduceSum", (n, g, c) -> {
      List<Long> axes = n.hasInput(1) ? constAxes(n, c) : null;
      boolean noop = (axes == null || axes.isEmpty()) && n.attrInt("noop_with_empty_axes", 0) == 1;
      return nullsAfter(1, n, noop ? g.get(0) : reduceBack(n, g.get(0), c, axes, false));
    });
    RULES.put("ReduceMean", (n, g, c) -> List.of(reduceBack(n, g.get(0), c, n.attrInts("axes"), true)));
    RULES.put("Softmax", (n, g, c) -> {
      String y = n.output(0);
      String axes = c.longs(List.of(n.attrInt("axis", -1)));
      String dot = c.op("ReduceSum", List.of(c.mul(g.get(0), y), axes), attr("keepdims", 1L));
      return List.of(c.mul(y, c.op("Sub", List.of(g.get(0), dot))));
    });
    RULES.put("LogSoftmax", (n, g, c) -> {
      String y = n.output(0);
      String axes = c.longs(List.of(n.attrInt("axis", -1)));
      String sum = c.op("ReduceSum", List.of(g.get(0), axes), attr("keepdims", 1L));
      return List.of(c.op("Sub", List.of(g.get(0), c.mul(c.op("Exp", List.of(y)), sum))));
    });
    RULES.put("Concat", (n, g, c) -> {
      int rank = c.type(n.input(0)).rank();
      long axis = n.attrInt("axis", 0);
      axis = axis < 0 ? axis + rank : axis;
      List<String> sizes = new ArrayList<>();
      for (String in : n.inputs()) {
        Dim d = c.type(in).dim((int) axis);
        sizes.add(d.isKnown() ? c.longs(List.of(d.size()))
            : c.op("Slice", List.of(c.shape(in), c.longs(List.of(axis)), c.longs(List.of(axis + 1)))));
      }
      String split = c.op("Concat", sizes, attr("axis", 0L));
      List<String> parts = c.split(g.get(0), split, axis, n.inputs().size());
      List<@Nullable String> out = new ArrayList<>();
      for (int i = 0; i < parts.size(); i++) {
        out.add(c.needs(i) ? parts.get(i) : null);
      }
      return out;
    });
    RULES.put("Slice", GradientRegistry::slice);
    RULES.put("Gather", GradientRegistry::gather);
    RULES.put("GatherElements", (n, g, c) -> {
      String data = n.input(0);
      String zeros = c.op("ConstantOfShape", List.of(c.shape(data)),
          attr("value", Tensors.floats("zero", c.type(data).elemType(), List.of(1L), new double[] {0})));
      return nullsAfter(1, n, c.op("ScatterElements", List.of(zeros, n.input(1), g.get(0)),
          attr("axis", n.attrInt("axis", 0)), attrS("reduction", "add")));
    });
    RULES.put("Where", (n, g, c) -> {
      TensorType out = c.type(n.output(0));
      String zero = c.scalar(0, n.output(0));
      List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null, null));
      if (c.needs(1)) {
        r.set(1, c.unbroadcast(c.op("Where", List.of(n.input(0), g.get(0), zero)), out, n.input(1)));
      }
      if (c.needs(2)) {
        r.set(2, c.unbroadcast(c.op("Where", List.of(n.input(0), zero, g.get(0))), out, n.input(2)));
      }
      return r;
    });
    breadthRules();
  }

  // ---- Breadth rules (issue 3): elementwise, shape, normalization and contraction ops -------

  /** Ops whose rules accept a missing gradient for their first output (others get zeros). */
  private static final Set<String> ANY_OUTPUT_GRADIENT = Set.of("Split");

  private static void breadthRules() {
    NON_DIFFERENTIABLE.addAll(List.of("IsNaN", "IsInf", "EyeLike", "Hardmax", "Bernoulli",
        "RandomNormalLike", "RandomUniformLike", "Multinomial"));
    RULES.put("Abs", (n, g, c) -> List.of(c.mul(g.get(0), c.op("Sign", List.of(n.input(0))))));
    RULES.put("Sin", (n, g, c) -> List.of(c.mul(g.get(0), c.op("Cos", List.of(n.input(0))))));
    RULES.put("Cos", (n, g, c) -> List.of(c.neg(c.mul(g.get(0), c.op("Sin", List.of(n.input(0)))))));
    RULES.put("LeakyRelu", (n, g, c) -> {
      // Slope 1 where x > 0, alpha elsewhere (x = 0 included, as Relu's rule takes 0 there).
      String x = n.input(0);
      String positive = c.op("Greater", List.of(x, c.scalar(0, x)));
      String leaky = c.mul(g.get(0), c.scalar(n.attrFloat("alpha", 0.01f), x));
      return List.of(c.op("Where", List.of(positive, g.get(0), leaky)));
    });
    RULES.put("CastLike", (n, g, c) -> {
      // Only the first input's values flow; the second gives the element type.
      TensorType from = c.type(n.input(0));
      return Arrays.asList(from.isFloating() && c.needs(0) ? c.op("CastLike", List.of(g.get(0), n.input(0))) : null, null);
    });
    RULES.put("Clip", GradientRegistry::clip);
    RULES.put("Max", GradientRegistry::minMax);
    RULES.put("Min", GradientRegistry::minMax);
    RULES.put("ReduceMax", GradientRegistry::reduceMax);
    RULES.put("Tile", GradientRegistry::tile);
    RULES.put("Trilu", (n, g, c) -> {
      // Trilu masks its input: the gradient is the same mask applied to the output gradient.
      List<String> in = n.hasInput(1) ? List.of(g.get(0), n.input(1)) : List.of(g.get(0));
      return nullsAfter(1, n, c.op("Trilu", in, attr("upper", n.attrInt("upper", 1))));
    });
    RULES.put("Pad", GradientRegistry::pad);
    RULES.put("Split", GradientRegistry::split);
    RULES.put("Einsum", GradientRegistry::einsum);
    RULES.put("LayerNormalization", GradientRegistry::layerNorm);
  }

  /** Whether the rule of {@code opType} handles a null gradient for output 0 (see {@link Autodiff}). */
  static boolean acceptsAnyOutputGradient(String opType) {
    return ANY_OUTPUT_GRADIENT.contains(opType);
  }

  static {
    // Gemm and the 2-D CNN ops (Conv, pools, inference-mode BatchNormalization).
    ConvGradients.register(RULES);
  }

  private GradientRegistry() {}

  public static @Nullable GradientRule rule(String opType) {
    return RULES.get(opType);
  }

  public static boolean isNonDifferentiable(String opType) {
    return NON_DIFFERENTIABLE.contains(opType);
  }

  /** Op types with a gradient rule, sorted. */
  public static SortedSet<String> differentiableOps() {
    return Collections.unmodifiableSortedSet(new TreeSet<>(RULES.keySet()));
  }

  public static SortedSet<String> nonDifferentiableOps() {
    return Collections.unmodifiableSortedSet(NON_DIFFERENTIABLE);
  }

  private static dev.graft.spec.onnx.Onnx.AttributeProto attrS(String name, String value) {
    return dev.graft.spec.onnx.Onnx.AttributeProto.newBuilder()
        .setName(name)
        .setType(dev.graft.spec.onnx.Onnx.AttributeProto.AttributeType.STRING)
        .setS(com.google.protobuf.ByteString.copyFromUtf8(value))
        .build();
  }

  private static List<Long> longList(long[] values) {
    List<Long> l = new ArrayList<>();
    for (long v : values) {
      l.add(v);
    }
    return l;
  }

  private static List<@Nullable String> nullsAfter(int count, Node n, String first) {
    List<@Nullable String> r = new ArrayList<>();
    r.add(first);
    for (int i = 1; i < n.inputs().size(); i++) {
      r.add(null);
    }
    return r;
  }

  private static List<@Nullable String> binary(
      Node n, String g, Grad c, @Nullable String da, @Nullable String db) {
    TensorType out = c.type(n.output(0));
    return Arrays.asList(
        c.needs(0) && da != null ? c.unbroadcast(da, out, n.input(0)) : null,
        c.needs(1) && db != null ? c.unbroadcast(db, out, n.input(1)) : null);
  }

  private static List<@Nullable String> pow(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    String p = n.input(1);
    String gy = g.get(0);
    String dx = null;
    String dp = null;
    if (c.needs(0)) {
      // p * x^(p-1)
      String pm1 = c.op("Sub", List.of(p, c.scalar(1, p)));
      dx = c.mul(gy, c.mul(p, c.op("Pow", List.of(x, pm1))));
    }
    if (c.needs(1)) {
      dp = c.mul(gy, c.mul(n.output(0), c.op("Log", List.of(x))));
    }
    return binary(n, gy, c, dx, dp);
  }

  private static List<@Nullable String> matmul(Node n, List<@Nullable String> g, Grad c) {
    String a = n.input(0);
    String b = n.input(1);
    String gy = g.get(0);
    TensorType ta = c.type(a);
    TensorType tb = c.type(b);
    if (ta.rank() < 2 || tb.rank() < 2) {
      throw new MissingGradientException(n, "MatMul gradient needs operands of rank >= 2");
    }
    String da = null;
    String db = null;
    if (c.needs(0)) {
      da = c.op("MatMul", List.of(gy, transposeLast(c, b, tb.rank())));
      da = c.unbroadcast(da, withLast(c.type(n.output(0)), ta.dim(ta.rank() - 2), ta.dim(ta.rank() - 1)), a);
    }
    if (c.needs(1)) {
      if (tb.rank() == 2 && ta.rank() > 2) {
        // Weight gradient of a batched x·W: flatten the batch dims, one GEMM.
        Dim k = ta.dim(ta.rank() - 1);
        Dim m = tb.dim(1);
        if (!k.isKnown() || !m.isKnown()) {
          throw new MissingGradientException(n, "MatMul weight gradient needs fixed inner sizes");
        }
        String a2 = c.op("Reshape", List.of(a, c.longs(List.of(-1L, k.size()))));
        String g2 = c.op("Reshape", List.of(gy, c.longs(List.of(-1L, m.size()))));
        db = c.op("Gemm", List.of(a2, g2), attr("transA", 1L));
      } else {
        db = c.op("MatMul", List.of(transposeLast(c, a, ta.rank()), gy));
        db = c.unbroadcast(db, withLast(c.type(n.output(0)), tb.dim(tb.rank() - 2), tb.dim(tb.rank() - 1)), b);
      }
    }
    return Arrays.asList(da, db);
  }

  private static TensorType withLast(TensorType t, Dim second, Dim last) {
    List<Dim> s = new ArrayList<>(t.dims());
    s.set(s.size() - 2, second);
    s.set(s.size() - 1, last);
    return TensorType.of(t.elemType(), s);
  }

  private static String transposeLast(Grad c, String x, int rank) {
    List<Long> perm = new ArrayList<>();
    for (long i = 0; i < rank; i++) {
      perm.add(i);
    }
    Collections.swap(perm, rank - 1, rank - 2);
    return c.op("Transpose", List.of(x), attr("perm", perm));
  }

  private static List<Long> constAxes(Node n, Grad c) {
    List<Long> axes = c.constLongs(n.input(1));
    if (axes == null) {
      throw new MissingGradientException(n, "ReduceSum axes must be constant");
    }
    return axes;
  }

  /** Sum/mean reductions: broadcast the gradient back over the reduced axes. */
  private static String reduceBack(Node n, String g, Grad c, @Nullable List<Long> axes, boolean mean) {
    String x = n.input(0);
    TensorType tx = c.type(x);
    int rank = tx.rank();
    List<Long> norm = new ArrayList<>();
    if (axes == null || axes.isEmpty()) {
      for (long i = 0; i < rank; i++) {
        norm.add(i);
      }
    } else {
      for (long a : axes) {
        norm.add(a < 0 ? a + rank : a);
      }
    }
    String kept = g;
    if (n.attrInt("keepdims", 1) == 0) {
      kept = c.op("Unsqueeze", List.of(g, c.longs(norm)));
    }
    String full = c.op("Expand", List.of(kept, c.shape(x)));
    if (!mean) {
      return full;
    }
    Dim count = Dim.of(1);
    for (long a : norm) {
      count = count.times(tx.dim((int) a));
    }
    String divisor;
    if (count.isKnown()) {
      divisor = c.scalar(count.size(), x);
    } else {
      String sizeX = c.size(x);
      String sizeY = c.size(n.output(0));
      divisor = c.op("Cast", List.of(c.op("Div", List.of(sizeX, sizeY))), attr("to", (long) tx.elemType()));
    }
    return c.op("Div", List.of(full, divisor));
  }

  /**
   * Gather: scatter-add the gradient back into zeros shaped like the data. For {@code axis != 0}
   * the data's axis is moved to the front, scattered there, and moved back.
   */
  private static List<@Nullable String> gather(Node n, List<@Nullable String> g, Grad c) {
    String data = n.input(0);
    TensorType td = c.type(data);
    int rank = td.rank();
    int q = c.type(n.input(1)).rank();
    long axis = n.attrInt("axis", 0);
    int a = (int) (axis < 0 ? axis + rank : axis);
    String grad = g.get(0);
    String frontData = data;
    long[] dataPerm = new long[rank];
    if (a != 0) {
      // data [D0..D(a-1), Da, ...] → [Da, D0..D(a-1), D(a+1)..]
      dataPerm[0] = a;
      for (int i = 1; i <= a; i++) {
        dataPerm[i] = i - 1;
      }
      for (int i = a + 1; i < rank; i++) {
        dataPerm[i] = i;
      }
      frontData = c.op("Transpose", List.of(data), attr("perm", longList(dataPerm)));
      // grad [D0..D(a-1), I..., D(a+1)..] → [I..., D0..D(a-1), D(a+1)..]
      int outRank = rank - 1 + q;
      List<Long> gradPerm = new ArrayList<>();
      for (int i = 0; i < q; i++) {
        gradPerm.add((long) (a + i));
      }
      for (int i = 0; i < a; i++) {
        gradPerm.add((long) i);
      }
      for (int i = a + q; i < outRank; i++) {
        gradPerm.add((long) i);
      }
      grad = c.op("Transpose", List.of(grad), attr("perm", gradPerm));
    }
    String zeros = c.op("ConstantOfShape", List.of(c.shape(frontData)),
        attr("value", Tensors.floats("zero", td.elemType(), List.of(1L), new double[] {0})));
    String idx = c.op("Unsqueeze", List.of(n.input(1), c.longs(List.of(-1L))));
    String scattered = c.op("ScatterND", List.of(zeros, idx, grad), attrS("reduction", "add"));
    if (a != 0) {
      long[] inverse = new long[rank];
      for (int i = 0; i < rank; i++) {
        inverse[(int) dataPerm[i]] = i;
      }
      scattered = c.op("Transpose", List.of(scattered), attr("perm", longList(inverse)));
    }
    return nullsAfter(1, n, scattered);
  }

  /**
   * Slice: unit-step axes pad the gradient back with zeros; other steps (negative ones too)
   * scatter it to the positions {@code start + j·step} of their axis. ONNX's clamping of starts
   * and ends (different for negative steps) decides the positions.
   */
  private static List<@Nullable String> slice(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    TensorType tx = c.type(x);
    int rank = tx.rank();
    List<Long> starts = c.constLongs(n.input(1));
    List<Long> ends = c.constLongs(n.input(2));
    List<Long> axes = n.hasInput(3) ? c.constLongs(n.input(3)) : null;
    List<Long> steps = n.hasInput(4) ? c.constLongs(n.input(4)) : null;
    if (starts == null || ends == null || (n.hasInput(3) && axes == null) || (n.hasInput(4) && steps == null)) {
      throw new MissingGradientException(n, "Slice gradient needs constant starts, ends, axes and steps");
    }
    String grad = g.get(0);
    long[] before = new long[rank];
    long[] after = new long[rank];
    for (int k = 0; k < starts.size(); k++) {
      int a = (int) (axes == null ? k : axes.get(k) < 0 ? axes.get(k) + rank : axes.get(k));
      long step = steps == null ? 1 : steps.get(k);
      Dim d = tx.dim(a);
      if (step == 0 || !d.isKnown()) {
        throw new MissingGradientException(n, "Slice gradient needs non-zero steps over fixed-size axes");
      }
      long len = d.size();
      long s = starts.get(k) < 0 ? starts.get(k) + len : starts.get(k);
      long e = ends.get(k) < 0 ? ends.get(k) + len : ends.get(k);
      long count;
      if (step > 0) {
        s = Math.max(0, Math.min(len, s));
        e = Math.max(0, Math.min(len, e));
        count = Math.max(0, (e - s + step - 1) / step);
      } else {
        s = Math.max(0, Math.min(len - 1, s));
        e = Math.max(-1, Math.min(len - 1, e));
        count = Math.max(0, (s - e - step - 1) / -step);
      }
      if (count == 0) {
        return nullsAfter(1, n, zerosLike(c, c.shape(x), tx.elemType()));
      }
      if (step == 1) {
        before[a] = s;
        after[a] = len - s - count;
        continue;
      }
      grad = scatterAlong(c, grad, a, rank, len, s, step, count, tx.elemType());
    }
    long[] pads = new long[2 * rank];
    System.arraycopy(before, 0, pads, 0, rank);
    System.arraycopy(after, 0, pads, rank, rank);
    if (Arrays.stream(pads).allMatch(p -> p == 0)) {
      return nullsAfter(1, n, grad);
    }
    return nullsAfter(1, n, c.op("Pad", List.of(grad, c.longs(longList(pads)))));
  }

  /** Scatters {@code grad}'s {@code count} entries along axis {@code a} to {@code start + j·step} of {@code len}. */
  private static String scatterAlong(Grad c, String grad, int a, int rank, long len, long start, long step,
      long count, int elemType) {
    long[] perm = new long[rank];
    perm[0] = a;
    for (int i = 1; i <= a; i++) {
      perm[i] = i - 1;
    }
    for (int i = a + 1; i < rank; i++) {
      perm[i] = i;
    }
    String front = a == 0 ? grad : c.op("Transpose", List.of(grad), attr("perm", longList(perm)));
    String rest = c.op("Slice", List.of(c.shape(front), c.longs(List.of(1L)), c.longs(List.of(Long.MAX_VALUE))));
    String zeros = zerosLike(c, c.op("Concat", List.of(c.longs(List.of(len)), rest), attr("axis", 0L)), elemType);
    List<Long> positions = new ArrayList<>();
    for (long j = 0; j < count; j++) {
      positions.add(start + j * step);
    }
    String idx = c.op("Unsqueeze", List.of(c.longs(positions), c.longs(List.of(-1L))));
    String scattered = c.op("ScatterND", List.of(zeros, idx, front));
    if (a == 0) {
      return scattered;
    }
    long[] inverse = new long[rank];
    for (int i = 0; i < rank; i++) {
      inverse[(int) perm[i]] = i;
    }
    return c.op("Transpose", List.of(scattered), attr("perm", longList(inverse)));
  }

  // ---- Breadth rules' helpers (issue 3) -----------------------------------------------------

  private static String zerosLike(Grad c, String shape, int elemType) {
    return c.op("ConstantOfShape", List.of(shape),
        attr("value", Tensors.floats("zero", elemType, List.of(1L), new double[] {0})));
  }

  private static String castTo(Grad c, String value, int elemType) {
    return c.op("Cast", List.of(value), attr("to", (long) elemType));
  }

  /**
   * Clip(x, min, max): the gradient passes where {@code min <= x <= max} (bounds inclusive, as
   * torch.clamp); below {@code min} it goes to {@code min}, above {@code max} to {@code max}.
   */
  private static List<@Nullable String> clip(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    String gy = g.get(0);
    TensorType out = c.type(n.output(0));
    String zero = c.scalar(0, x);
    String below = n.hasInput(1) ? c.op("Less", List.of(x, n.input(1))) : null;
    String above = n.hasInput(2) ? c.op("Greater", List.of(x, n.input(2))) : null;
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null, null));
    if (c.needs(0)) {
      String outside = below == null ? above : above == null ? below : c.op("Or", List.of(below, above));
      r.set(0, outside == null ? gy : c.op("Where", List.of(outside, zero, gy)));
    }
    if (c.needs(1) && below != null) {
      r.set(1, c.unbroadcast(c.op("Where", List.of(below, gy, zero)), out, n.input(1)));
    }
    if (c.needs(2) && above != null) {
      r.set(2, c.unbroadcast(c.op("Where", List.of(above, gy, zero)), out, n.input(2)));
    }
    return r.subList(0, n.inputs().size());
  }

  /**
   * Variadic, broadcasting Min/Max: each input gets the gradient where it equals the result.
   * Ties split it evenly among the inputs attaining the extremum (torch.maximum's convention
   * for two inputs; at a two-way tie this is also the central difference).
   */
  private static List<@Nullable String> minMax(Node n, List<@Nullable String> g, Grad c) {
    String y = n.output(0);
    TensorType out = c.type(y);
    List<String> masks = new ArrayList<>();
    for (String in : n.inputs()) {
      masks.add(castTo(c, c.op("Equal", List.of(in, y)), out.elemType()));
    }
    String share = masks.size() == 1 ? g.get(0) : c.op("Div", List.of(g.get(0), c.op("Sum", masks)));
    List<@Nullable String> r = new ArrayList<>();
    for (int i = 0; i < masks.size(); i++) {
      r.add(c.needs(i) ? c.unbroadcast(c.mul(share, masks.get(i)), out, n.input(i)) : null);
    }
    return r;
  }

  private static List<Long> normalizedAxes(@Nullable List<Long> axes, int rank) {
    List<Long> norm = new ArrayList<>();
    if (axes == null || axes.isEmpty()) {
      for (long i = 0; i < rank; i++) {
        norm.add(i);
      }
    } else {
      for (long a : axes) {
        norm.add(a < 0 ? a + rank : a);
      }
    }
    return norm;
  }

  /**
   * ReduceMax (axes as attribute, the opset-17 form the import normalizes to): the gradient goes
   * to the elements equal to the maximum, split evenly among ties (torch.amax's convention).
   */
  private static List<@Nullable String> reduceMax(Node n, List<@Nullable String> g, Grad c) {
    if (n.hasInput(1)) {
      throw new MissingGradientException(n, "ReduceMax axes given as a non-constant input are not supported");
    }
    String x = n.input(0);
    TensorType tx = c.type(x);
    if (!tx.hasRank()) {
      throw new MissingGradientException(n, "ReduceMax gradient needs the input rank");
    }
    List<Long> axes = normalizedAxes(n.attrInts("axes"), tx.rank());
    String y = n.output(0);
    String gy = g.get(0);
    if (n.attrInt("keepdims", 1) == 0) {
      y = c.op("Unsqueeze", List.of(y, c.longs(axes)));
      gy = c.op("Unsqueeze", List.of(gy, c.longs(axes)));
    }
    String mask = castTo(c, c.op("Equal", List.of(x, y)), tx.elemType());
    String count = c.op("ReduceSum", List.of(mask, c.longs(axes)), attr("keepdims", 1L));
    return nullsAfter(1, n, c.mul(c.op("Div", List.of(gy, count)), mask));
  }

  /** Tile: view output dim i as [repeats[i], d[i]] and sum over the copies. */
  private static List<@Nullable String> tile(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    TensorType tx = c.type(x);
    List<Long> reps = c.constLongs(n.input(1));
    if (reps == null || !tx.hasRank() || reps.size() != tx.rank()) {
      throw new MissingGradientException(n, "Tile gradient needs constant repeats and a known input rank");
    }
    List<String> dims = new ArrayList<>();
    List<Long> copies = new ArrayList<>();
    for (int i = 0; i < tx.rank(); i++) {
      Dim d = tx.dim(i);
      dims.add(c.longs(List.of(reps.get(i))));
      dims.add(d.isKnown() ? c.longs(List.of(d.size()))
          : c.op("Slice", List.of(c.shape(x), c.longs(List.of((long) i)), c.longs(List.of(i + 1L)))));
      copies.add(2L * i);
    }
    String viewed = c.op("Reshape", List.of(g.get(0), c.op("Concat", dims, attr("axis", 0L))));
    return nullsAfter(1, n, c.op("ReduceSum", List.of(viewed, c.longs(copies)), attr("keepdims", 0L)));
  }

  /**
   * Pad, constant mode: padding the gradient by the negated pads crops what was padded and
   * zero-fills what negative pads cropped. The constant value gets the sum over the padding.
   */
  private static List<@Nullable String> pad(Node n, List<@Nullable String> g, Grad c) {
    String mode = n.attrString("mode");
    if (mode != null && !mode.equals("constant")) {
      throw new MissingGradientException(n, "Pad gradient supports mode 'constant' only, got '" + mode + "'");
    }
    if (n.hasInput(3)) {
      throw new MissingGradientException(n, "Pad axes must be constant (shape inference folds them into pads)");
    }
    List<Long> pads = c.constLongs(n.input(1));
    String negated;
    if (pads != null) {
      List<Long> neg = new ArrayList<>();
      for (long p : pads) {
        neg.add(-p);
      }
      negated = c.longs(neg);
    } else {
      negated = c.neg(n.input(1));
    }
    String gx = c.op("Pad", List.of(g.get(0), negated));
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(c.needs(0) ? gx : null, null, null));
    if (c.needs(2)) {
      String all = c.op("ReduceSum", List.of(g.get(0)), attr("keepdims", 0L));
      String inner = c.op("ReduceSum", List.of(gx), attr("keepdims", 0L));
      r.set(2, c.op("Reshape", List.of(c.op("Sub", List.of(all, inner)), c.shape(n.input(2)))));
    }
    return r.subList(0, n.inputs().size());
  }

  /** Split: concatenate the outputs' gradients, zeros for outputs that get none. */
  private static List<@Nullable String> split(Node n, List<@Nullable String> g, Grad c) {
    if (n.has("num_outputs")) {
      throw new MissingGradientException(n, "Split num_outputs must be normalized by shape inference first");
    }
    int elemType = c.type(n.input(0)).elemType();
    List<String> parts = new ArrayList<>();
    for (int i = 0; i < n.outputs().size(); i++) {
      String gi = i < g.size() ? g.get(i) : null;
      parts.add(gi != null ? gi : zerosLike(c, c.shape(n.output(i)), elemType));
    }
    return nullsAfter(1, n, c.op("Concat", parts, attr("axis", n.attrInt("axis", 0))));
  }

  /** A two-operand einsum equation made explicit: operand index strings and the output's. */
  record EinsumEquation(String a, String b, String out) {
    /**
     * Parses {@code equation}; throws naming the node for what the rule does not support
     * (other than two operands, ellipsis, an index repeated within one term).
     */
    static EinsumEquation parse(Node n) {
      String eq = n.attrString("equation");
      if (eq == null) {
        throw new MissingGradientException(n, "Einsum without an equation");
      }
      String e = eq.replace(" ", "");
      String why = null;
      String[] sides = e.split("->", -1);
      String[] terms = sides[0].split(",", -1);
      if (e.contains(".")) {
        why = "ellipsis ('...') is not supported";
      } else if (terms.length != 2 || n.inputs().size() != 2) {
        why = "only two-operand equations are supported";
      } else if (sides.length > 2) {
        why = "malformed equation";
      }
      if (why == null) {
        String out;
        if (sides.length == 2) {
          out = sides[1];
        } else {
          // Implicit output: the indices that occur once, in alphabetical order.
          StringBuilder o = new StringBuilder();
          String all = terms[0] + terms[1];
          all.chars().distinct().sorted().filter(ch -> all.indexOf(ch) == all.lastIndexOf(ch))
              .forEach(ch -> o.append((char) ch));
          out = o.toString();
        }
        for (String t : List.of(terms[0], terms[1], out)) {
          if (!t.chars().allMatch(Character::isLetter) || t.chars().distinct().count() != t.length()) {
            why = "term '" + t + "' repeats an index or has a non-letter (diagonals are not supported)";
          }
        }
        if (why == null) {
          String[] ops = {terms[0], terms[1]};
          for (int i = 0; i < 2 && why == null; i++) {
            for (char ch : ops[i].toCharArray()) {
              if (out.indexOf(ch) < 0 && ops[1 - i].indexOf(ch) < 0) {
                why = "index '" + ch + "' of operand " + i + " is summed within that operand alone";
              }
            }
          }
          for (char ch : out.toCharArray()) {
            if (terms[0].indexOf(ch) < 0 && terms[1].indexOf(ch) < 0) {
              why = "output index '" + ch + "' is in no operand";
            }
          }
        }
        if (why == null) {
          return new EinsumEquation(terms[0], terms[1], out);
        }
      }
      throw new MissingGradientException(n, "Einsum equation '" + eq + "' is not supported: " + why);
    }
  }

  /**
   * Two-operand Einsum {@code a,b->o}: the gradient of each operand is the einsum of the output
   * gradient with the other operand, {@code o,b->a} and {@code o,a->b}.
   */
  private static List<@Nullable String> einsum(Node n, List<@Nullable String> g, Grad c) {
    EinsumEquation e = EinsumEquation.parse(n);
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null));
    if (c.needs(0)) {
      r.set(0, c.op("Einsum", List.of(g.get(0), n.input(1)), attrS("equation", e.out() + "," + e.b() + "->" + e.a())));
    }
    if (c.needs(1)) {
      r.set(1, c.op("Einsum", List.of(g.get(0), n.input(0)), attrS("equation", e.out() + "," + e.a() + "->" + e.b())));
    }
    return r;
  }

  /**
   * LayerNormalization over axes {@code [axis, rank)}: with x̂ = (x − mean)·invstd and
   * ĝ = g·scale, dx = invstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dscale = Σ g·x̂, dB = Σ g. Uses
   * the node's Mean/InvStdDev outputs when present in the input's precision, else recomputes them.
   */
  private static List<@Nullable String> layerNorm(Node n, List<@Nullable String> g, Grad c) {
    for (int k = 1; k < g.size(); k++) {
      if (g.get(k) != null) {
        throw new MissingGradientException(n, "only output Y of LayerNormalization can carry a gradient "
            + "(Mean and InvStdDev feed the loss here)");
      }
    }
    String x = n.input(0);
    TensorType tx = c.type(x);
    if (!tx.hasRank()) {
      throw new MissingGradientException(n, "LayerNormalization gradient needs the input rank");
    }
    int rank = tx.rank();
    long axis = n.attrInt("axis", -1);
    List<Long> axes = new ArrayList<>();
    for (long i = axis < 0 ? axis + rank : axis; i < rank; i++) {
      axes.add(i);
    }
    String mean;
    String inv;
    boolean stats = n.outputs().size() > 2 && !n.output(1).isEmpty() && !n.output(2).isEmpty()
        && c.type(n.output(1)).elemType() == tx.elemType() && c.type(n.output(2)).elemType() == tx.elemType();
    if (stats) {
      mean = n.output(1);
      inv = n.output(2);
    } else {
      mean = c.op("ReduceMean", List.of(x), attr("axes", axes));
      String d = c.op("Sub", List.of(x, mean));
      String var = c.op("ReduceMean", List.of(c.mul(d, d)), attr("axes", axes));
      String eps = c.scalar(n.attrFloat("epsilon", 1e-5f), x);
      inv = c.op("Reciprocal", List.of(c.op("Sqrt", List.of(c.op("Add", List.of(var, eps))))));
    }
    String xhat = c.mul(c.op("Sub", List.of(x, mean)), inv);
    String gy = g.get(0);
    TensorType out = c.type(n.output(0));
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null, null));
    if (c.needs(0)) {
      String gh = c.mul(gy, n.input(1));
      String m1 = c.op("ReduceMean", List.of(gh), attr("axes", axes));
      String m2 = c.op("ReduceMean", List.of(c.mul(gh, xhat)), attr("axes", axes));
      String centred = c.op("Sub", List.of(c.op("Sub", List.of(gh, m1)), c.mul(xhat, m2)));
      r.set(0, c.unbroadcast(c.mul(inv, centred), out, x));
    }
    if (c.needs(1)) {
      r.set(1, c.unbroadcast(c.mul(gy, xhat), out, n.input(1)));
    }
    if (c.needs(2)) {
      r.set(2, c.unbroadcast(gy, out, n.input(2)));
    }
    return r.subList(0, n.inputs().size());
  }
}
