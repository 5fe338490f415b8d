package dev.graft.compiler.autodiff;

import static dev.graft.compiler.autodiff.RuleHelpers.attrS;
import static dev.graft.compiler.autodiff.RuleHelpers.longList;
import static dev.graft.compiler.autodiff.RuleHelpers.nullsAfter;
import static dev.graft.compiler.autodiff.RuleHelpers.zerosLike;
import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of shape and data movement: transposes and reshapes, Expand, Concat and
 * Split, Slice, Gather and GatherElements (scatter-adds into zeros), Tile, Trilu and Pad.
 */
final class ShapeGradients {
  private ShapeGradients() {}

  static List<@Nullable String> transpose(Node n, List<@Nullable String> g, Grad c) {
    List<Long> perm = n.attrInts("perm");
    int rank = c.type(n.input(0)).rank();
    long[] inverse = new long[rank];
    for (int i = 0; i < rank; i++) {
      int p = perm == null ? rank - 1 - i : (int) (long) perm.get(i);
      inverse[p] = i;
    }
    return List.of(c.op("Transpose", List.of(g.get(0)), attr("perm", longList(inverse))));
  }

  /** Reshape, Unsqueeze, Squeeze, Flatten: the gradient reshaped to the input's shape. */
  static List<@Nullable String> reshapeBack(Node n, List<@Nullable String> g, Grad c) {
    return nullsAfter(1, n,
        c.op("Reshape", List.of(g.get(0), c.shape(n.input(0)))));
  }

  static List<@Nullable String> expand(Node n, List<@Nullable String> g, Grad c) {
    return nullsAfter(1, n, c.unbroadcast(g.get(0), c.type(n.output(0)), n.input(0)));
  }

  static List<@Nullable String> concat(Node n, List<@Nullable String> g, Grad c) {
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
  }

  /**
   * Slice: unit-step axes pad the gradient back with zeros; other steps (negative ones too)
   * scatter it to the positions {@code start + j·step} of their axis. ONNX's clamping of starts
   * and ends (different for negative steps) decides the positions.
   */
  static List<@Nullable String> slice(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    TensorType tx = c.type(x);
    int rank = tx.rank();
    List<Long> starts = c.foldedLongs(n.input(1));
    List<Long> ends = c.foldedLongs(n.input(2));
    List<Long> axes = n.hasInput(3) ? c.foldedLongs(n.input(3)) : null;
    List<Long> steps = n.hasInput(4) ? c.foldedLongs(n.input(4)) : null;
    String[] inputs = {"", "starts", "ends", "axes", "steps"};
    for (int i = 1; i < Math.min(5, n.inputs().size()); i++) {
      if (n.hasInput(i) && c.foldedLongs(n.input(i)) == null) {
        throw new DataDependentIndexException(n, inputs[i] + " (input " + i + ", '" + n.input(i) + "')",
            "'" + n.input(i) + "' is not a constant and shape inference could not compute it from fixed sizes");
      }
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
  static String scatterAlong(Grad c, String grad, int a, int rank, long len, long start, long step,
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

  /**
   * Gather: scatter-add the gradient back into zeros shaped like the data. For {@code axis != 0}
   * the data's axis is moved to the front, scattered there, and moved back.
   */
  static List<@Nullable String> gather(Node n, List<@Nullable String> g, Grad c) {
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

  static List<@Nullable String> gatherElements(Node n, List<@Nullable String> g, Grad c) {
    String data = n.input(0);
    String zeros = c.op("ConstantOfShape", List.of(c.shape(data)),
        attr("value", Tensors.floats("zero", c.type(data).elemType(), List.of(1L), new double[] {0})));
    return nullsAfter(1, n, c.op("ScatterElements", List.of(zeros, n.input(1), g.get(0)),
        attr("axis", n.attrInt("axis", 0)), attrS("reduction", "add")));
  }

  /** Tile: view output dim i as [repeats[i], d[i]] and sum over the copies. */
  static List<@Nullable String> tile(Node n, List<@Nullable String> g, Grad c) {
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

  static List<@Nullable String> trilu(Node n, List<@Nullable String> g, Grad c) {
    // Trilu masks its input: the gradient is the same mask applied to the output gradient.
    List<String> in = n.hasInput(1) ? List.of(g.get(0), n.input(1)) : List.of(g.get(0));
    return nullsAfter(1, n, c.op("Trilu", in, attr("upper", n.attrInt("upper", 1))));
  }

  /**
   * Pad, constant mode: padding the gradient by the negated pads crops what was padded and
   * zero-fills what negative pads cropped. The constant value gets the sum over the padding.
   */
  static List<@Nullable String> pad(Node n, List<@Nullable String> g, Grad c) {
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
  static List<@Nullable String> split(Node n, List<@Nullable String> g, Grad c) {
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
}
