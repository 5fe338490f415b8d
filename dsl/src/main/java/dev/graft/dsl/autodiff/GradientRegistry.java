package dev.graft.dsl.autodiff;

import static dev.graft.dsl.ir.Node.attr;

import dev.graft.dsl.ir.Dim;
import dev.graft.dsl.ir.Node;
import dev.graft.dsl.ir.Tensors;
import dev.graft.dsl.ir.TensorType;
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

  /** Slice with unit steps: pad the gradient back with zeros. */
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
    long[] before = new long[rank];
    long[] after = new long[rank];
    for (int k = 0; k < starts.size(); k++) {
      int a = (int) (axes == null ? k : axes.get(k) < 0 ? axes.get(k) + rank : axes.get(k));
      long step = steps == null ? 1 : steps.get(k);
      Dim d = tx.dim(a);
      if (step != 1 || !d.isKnown()) {
        throw new MissingGradientException(n, "Slice gradient needs unit steps over fixed-size axes");
      }
      long len = d.size();
      long s = Math.max(0, Math.min(len, starts.get(k) < 0 ? starts.get(k) + len : starts.get(k)));
      long e = Math.max(0, Math.min(len, ends.get(k) < 0 ? ends.get(k) + len : ends.get(k)));
      before[a] = s;
      after[a] = len - Math.max(s, e);
    }
    long[] pads = new long[2 * rank];
    System.arraycopy(before, 0, pads, 0, rank);
    System.arraycopy(after, 0, pads, rank, rank);
    return nullsAfter(1, n, c.op("Pad", List.of(g.get(0), c.longs(longList(pads)))));
  }
}
