package dev.graft.compiler.kinds.tokens;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Graph edits prompt and prefix tuning share: prepending rows along a sequence axis, so that
 * shape inference names the longer axis {@code sequence_length+n} and every shape the host
 * computes from it follows; broadcasting learned rows over the batch; and trying an edit on a
 * copy of the host before placing it, to report a host whose shapes do not follow.
 */
final class VirtualTokens {
  private VirtualTokens() {}

  /**
   * A copy of {@code graph} that can be edited without touching it (nodes, initializers and types
   * are immutable values, shared).
   */
  static Graph copy(Graph graph) {
    Graph g = new Graph();
    g.setSourceOpset(graph.sourceOpset());
    graph.inputs().forEach(g::addInput);
    graph.initializers().forEach((name, t) -> g.addInitializer(t, graph.externalInitializers().contains(name)));
    graph.nodes().forEach(g::addImported);
    g.outputs().addAll(graph.outputs());
    graph.types().forEach(g.types()::putIfAbsent);
    return g;
  }

  /**
   * {@code Concat(fill, x)} along {@code axis}: {@code n} slices of constant {@code value}
   * (x's element type) before {@code x}, e.g. n ones before an attention mask [batch, sequence].
   */
  static String prependConstant(Graph g, String base, String x, int axis, long n, double value) {
    TensorType t = g.typeOrThrow(x);
    int rank = t.rank();
    int a = axis < 0 ? axis + rank : axis;
    List<String> shape = new ArrayList<>();
    if (a > 0) {
      shape.add(g.op(base + "/Shape_before", "Shape", List.of(x), attr("start", 0L), attr("end", (long) a)));
    }
    shape.add(g.longs(base + "/count", List.of(n)));
    if (a < rank - 1) {
      shape.add(g.op(base + "/Shape_after", "Shape", List.of(x), attr("start", (long) a + 1)));
    }
    String dims = shape.size() == 1 ? shape.get(0) : g.op(base + "/fill_shape", "Concat", shape, attr("axis", 0L));
    String fill = g.op(base + "/fill", "ConstantOfShape", List.of(dims), attr("value", constant(t.elemType(), value)));
    return g.op(base + "/Concat", "Concat", List.of(fill, x), attr("axis", (long) a));
  }

  /** A one-element tensor of {@code elemType} holding {@code value}, for ConstantOfShape. */
  private static TensorProto constant(int elemType, double value) {
    if (elemType == TensorType.INT64) {
      return Tensors.longs("value", List.of((long) value));
    }
    if (elemType == TensorType.INT32) {
      return TensorProto.newBuilder().setName("value").setDataType(TensorType.INT32).addDims(1)
          .addInt32Data((int) value).build();
    }
    return Tensors.floats("value", elemType, List.of(1L), new double[] {value});
  }

  /**
   * {@code rows} [n, hidden] broadcast to [batch, n, hidden], the batch taken from axis 0 of
   * {@code like}.
   */
  static String broadcastRows(Graph g, String base, String rows, String like, long n, long hidden) {
    String batch = g.op(base + "/batch", "Shape", List.of(like), attr("start", 0L), attr("end", 1L));
    String shape = g.op(base + "/rows_shape", "Concat", List.of(batch, g.longs(base + "/rows_dims", List.of(n, hidden))),
        attr("axis", 0L));
    String one = g.op(base + "/Unsqueeze", "Unsqueeze", List.of(rows, g.longs(base + "/batch_axis", List.of(0L))));
    return g.op(base + "/Expand", "Expand", List.of(one, shape));
  }

  /** {@code Concat(rows broadcast over the batch, x)} along axis 1 of x [batch, sequence, hidden]. */
  static String prependRows(Graph g, String base, String rows, String x, long n, long hidden) {
    String prefix = broadcastRows(g, base, rows, x, n, hidden);
    return g.op(base + "/Concat", "Concat", List.of(prefix, x), attr("axis", 1L));
  }

  /** Replaces every use of {@code from} by {@code to} except in the nodes added from index {@code mark} on. */
  static void replaceUsesBefore(Graph g, String from, String to, int mark) {
    g.replaceUses(from, to, new ArrayList<>(g.nodes().subList(mark, g.nodes().size())));
  }

  /** The dimension a sequence axis of size {@code sequence} has with {@code n} positions prepended. */
  static Dim extended(Dim sequence, long n) {
    return ShapeInference.sum(List.of(Dim.of(n), sequence));
  }

  /** Whether two types have the same element type and rank and certainly equal dims. */
  static boolean sameType(TensorType a, TensorType b) {
    if (a.elemType() != b.elemType() || a.hasRank() != b.hasRank()) {
      return false;
    }
    if (!a.hasRank()) {
      return true;
    }
    if (a.rank() != b.rank()) {
      return false;
    }
    for (int i = 0; i < a.rank(); i++) {
      if (!a.dim(i).sameAs(b.dim(i))) {
        return false;
      }
    }
    return true;
  }

  /** The host outputs whose type changed between {@code before} and {@code after}, described. */
  static List<String> changedOutputs(Graph graph, Map<String, TensorType> before) {
    List<String> changed = new ArrayList<>();
    for (String o : graph.outputs()) {
      TensorType was = before.get(o);
      TensorType now = graph.type(o);
      if (was != null && (now == null || !sameType(was, now))) {
        changed.add("output '" + o + "' would be " + now + " instead of " + was);
      }
    }
    return changed;
  }
}
