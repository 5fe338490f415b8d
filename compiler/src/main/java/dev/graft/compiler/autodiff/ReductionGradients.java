package dev.graft.compiler.autodiff;

import static dev.graft.compiler.autodiff.RuleHelpers.castTo;
import static dev.graft.compiler.autodiff.RuleHelpers.normalizedAxes;
import static dev.graft.compiler.autodiff.RuleHelpers.nullsAfter;
import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of reductions: ReduceSum and ReduceMean broadcast the gradient back over the
 * reduced axes (divided by the count for the mean); ReduceMax routes it to the maxima.
 */
final class ReductionGradients {
  private ReductionGradients() {}

  static List<@Nullable String> reduceSum(Node n, List<@Nullable String> g, Grad c) {
    List<Long> axes = n.hasInput(1) ? constAxes(n, c) : null;
    boolean noop = (axes == null || axes.isEmpty()) && n.attrInt("noop_with_empty_axes", 0) == 1;
    return nullsAfter(1, n, noop ? g.get(0) : reduceBack(n, g.get(0), c, axes, false));
  }

  static List<@Nullable String> reduceMean(Node n, List<@Nullable String> g, Grad c) {
    return List.of(reduceBack(n, g.get(0), c, n.attrInts("axes"), true));
  }

  /**
   * ReduceMax (axes as attribute, the opset-17 form the import normalizes to): the gradient goes
   * to the elements equal to the maximum, split evenly among ties (torch.amax's convention).
   */
  static List<@Nullable String> reduceMax(Node n, List<@Nullable String> g, Grad c) {
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

  static List<Long> constAxes(Node n, Grad c) {
    List<Long> axes = c.constLongs(n.input(1));
    if (axes == null) {
      throw new MissingGradientException(n, "ReduceSum axes must be constant");
    }
    return axes;
  }

  /** Sum/mean reductions: broadcast the gradient back over the reduced axes. */
  static String reduceBack(Node n, String g, Grad c, @Nullable List<Long> axes, boolean mean) {
    String x = n.input(0);
    TensorType tx = c.type(x);
    int rank = tx.rank();
    List<Long> norm = normalizedAxes(axes, rank);
    String kept = g;
    if (n.attrInt("keepdims", 1) == 0) {
      kept = c.op("Unsqueeze", List.of(g, c.longs(norm)));
    }
    if (!mean) {
      return c.op("Expand", List.of(kept, c.shape(x)));
    }
    // Divided while still reduced, then expanded: one division per reduced element, not per input element.
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
    return c.op("Expand", List.of(c.op("Div", List.of(kept, divisor)), c.shape(x)));
  }
}
