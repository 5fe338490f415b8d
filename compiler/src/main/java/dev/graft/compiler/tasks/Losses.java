package dev.graft.compiler.tasks;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.ArrayList;
import java.util.List;

/**
 * The losses tasks train with, as graph pieces of standard ops (each has a gradient rule, or is
 * integer-only and never differentiated):
 *
 * <ul>
 *   <li>softmax cross-entropy (classification, causal LM): {@code Σ_i w_i·ℓ_i / max(Σ_i w_i, 1)}
 *       with {@code ℓ_i = (1-ε)·(−log p_i[y_i]) + ε·mean_c(−log p_i[c])} and {@code w_i = 0} where
 *       the label is the ignore index, else 1 — for the causal LM i runs over positions and the
 *       label of position t is token t+1 (the last position and positions whose next token has
 *       {@code attention_mask} 0 get the ignore index);
 *   <li>mean squared error (regression): {@code mean((z − y)²)} over [batch, targets];
 *   <li>binary cross-entropy with logits (multi-label): {@code mean(max(z,0) − z·y +
 *       log(1 + exp(−|z|)))} over [batch, labels], with {@code max(z,0) = Relu(z)} and {@code |z| =
 *       Relu(z) + Relu(−z)}.
 * </ul>
 */
final class Losses {
  private Losses() {}

  /**
   * The label of each position is the next token: {@code labels[:, 1:]} padded at the end with
   * the ignore index, and the ignore index where the next token's {@code attention_mask} is 0.
   * Integer ops only: nothing here is differentiated.
   */
  static String nextTokens(Graph graph, String labels, long ignoreIndex) {
    String ignore = graph.constant("/loss/shift/ignore_index", Tensors.longs("ignore", List.of(), List.of(ignoreIndex)));
    String one = graph.longs("/loss/shift/one", List.of(1L));
    String end = graph.longs("/loss/shift/end", List.of(Long.MAX_VALUE));
    String pads = graph.longs("/loss/shift/pads", List.of(0L, 0L, 0L, 1L));
    String next = graph.op("/loss/shift/next", "Slice", List.of(labels, one, end, one));
    String shifted = graph.op("/loss/shift/labels", "Pad", List.of(next, pads, ignore));
    // Reshape to the labels' own shape: keeps [batch, sequence] known to shape inference (Pad
    // of a symbolic dimension is unknown), which the backward pass of the loss relies on.
    String labelsShape = graph.op("/loss/shift/shape", "Shape", List.of(labels));
    if (!graph.inputs().containsKey(TaskKind.MASK_INPUT)) {
      return graph.op("/loss/shift/reshaped", "Reshape", List.of(shifted, labelsShape));
    }
    String zero = graph.constant("/loss/shift/zero", Tensors.longs("zero", List.of(), List.of(0L)));
    String mask = graph.op("/loss/shift/mask", "Cast", List.of(TaskKind.MASK_INPUT), attr("to", (long) TensorType.INT64));
    String nextMask = graph.op("/loss/shift/next_mask", "Pad", List.of(
        graph.op("/loss/shift/mask_next", "Slice", List.of(mask, one, end, one)), pads, zero));
    String padding = graph.op("/loss/shift/padding", "Equal", List.of(nextMask, zero));
    String masked = graph.op("/loss/shift/masked", "Where", List.of(padding, ignore, shifted));
    return graph.op("/loss/shift/reshaped", "Reshape", List.of(masked, labelsShape));
  }

  /**
   * Token labels with the ignore index where the token's {@code attention_mask} is 0 (the labels
   * unchanged when the host has no mask). Integer ops only: nothing here is differentiated.
   */
  static String unmaskedTokens(Graph graph, String labels, long ignoreIndex) {
    if (!graph.inputs().containsKey(TaskKind.MASK_INPUT)) {
      return labels;
    }
    String ignore = graph.constant("/loss/tokens/ignore_index", Tensors.longs("ignore", List.of(), List.of(ignoreIndex)));
    String zero = graph.constant("/loss/tokens/zero", Tensors.longs("zero", List.of(), List.of(0L)));
    String mask = graph.op("/loss/tokens/mask", "Cast", List.of(TaskKind.MASK_INPUT), attr("to", (long) TensorType.INT64));
    String padding = graph.op("/loss/tokens/padding", "Equal", List.of(mask, zero));
    return graph.op("/loss/tokens/labels", "Where", List.of(padding, ignore, labels));
  }

  /**
   * Softmax cross-entropy of logits {@code [..., classes]} against int64 labels {@code [...]}:
   * the mean over non-ignored labels of {@code (1-ε)·NLL + ε·mean_c(−log p)}; 0 when every label
   * is ignored.
   */
  static String softmaxCrossEntropy(
      Graph graph, String logits, int rank, int elem, String labels, long ignoreIndex, double smoothing) {
    String ignore = graph.constant("/loss/ignore_index", Tensors.longs("ignore", List.of(), List.of(ignoreIndex)));
    String ignored = graph.op("/loss/ignored", "Equal", List.of(labels, ignore));
    String zero = graph.constant("/loss/zero_label", Tensors.longs("zero", List.of(), List.of(0L)));
    String safe = graph.op("/loss/safe_labels", "Where", List.of(ignored, zero, labels));
    String weight = graph.op("/loss/weight", "Cast", List.of(graph.op("/loss/counted", "Not", List.of(ignored))),
        attr("to", (long) elem));
    String lsm = graph.op("/loss/LogSoftmax", "LogSoftmax", List.of(logits), attr("axis", (long) (rank - 1)));
    String index = graph.op("/loss/labels", "Unsqueeze", List.of(safe, graph.longs("/loss/axis", List.of((long) (rank - 1)))));
    String picked = graph.op("/loss/picked", "GatherElements", List.of(lsm, index), attr("axis", (long) (rank - 1)));
    String logp = graph.op("/loss/log_p", "Squeeze", List.of(picked, graph.longs("/loss/squeeze_axis", List.of((long) (rank - 1)))));
    String perExample = graph.op("/loss/nll", "Neg", List.of(logp));
    if (smoothing > 0) {
      String meanLogp = graph.op("/loss/smooth/mean_log_p", "ReduceMean", List.of(lsm), attr("axes", List.of((long) (rank - 1))),
          attr("keepdims", 0L));
      String smooth = graph.op("/loss/smooth/uniform", "Neg", List.of(meanLogp));
      perExample = graph.op("/loss/smooth/sum", "Add", List.of(
          graph.op("/loss/smooth/nll", "Mul", List.of(perExample, graph.scalar("/loss/smooth/keep", elem, 1 - smoothing))),
          graph.op("/loss/smooth/spread", "Mul", List.of(smooth, graph.scalar("/loss/smooth/epsilon", elem, smoothing)))));
    }
    List<Long> all = new ArrayList<>();
    for (long a = 0; a < rank - 1; a++) {
      all.add(a);
    }
    String axes = graph.longs("/loss/all_axes", all);
    String total = graph.op("/loss/total", "ReduceSum", List.of(
        graph.op("/loss/weighted", "Mul", List.of(perExample, weight)), axes), attr("keepdims", 0L));
    String count = graph.op("/loss/count", "ReduceSum", List.of(weight, axes), attr("keepdims", 0L));
    String safeCount = graph.op("/loss/count_min", "Max", List.of(count, graph.scalar("/loss/one", elem, 1)));
    return graph.op("/loss/mean", "Div", List.of(total, safeCount));
  }

  /** {@code mean((z − y)²)} over every element. */
  static String meanSquaredError(Graph graph, String predictions, String targets) {
    String d = graph.op("/loss/diff", "Sub", List.of(predictions, targets));
    String sq = graph.op("/loss/square", "Mul", List.of(d, d));
    return graph.op("/loss/mean", "ReduceMean", List.of(sq), attr("axes", List.of(0L, 1L)), attr("keepdims", 0L));
  }

  /** {@code mean(max(z,0) − z·y + log(1 + exp(−|z|)))} over every element, stable for any z. */
  static String binaryCrossEntropyWithLogits(Graph graph, String z, String y, int elem) {
    String pos = graph.op("/loss/relu", "Relu", List.of(z));
    String neg = graph.op("/loss/relu_neg", "Relu", List.of(graph.op("/loss/neg", "Neg", List.of(z))));
    String abs = graph.op("/loss/abs", "Add", List.of(pos, neg));
    String softplus = graph.op("/loss/log1p_exp", "Log", List.of(graph.op("/loss/one_plus", "Add", List.of(
        graph.scalar("/loss/one", elem, 1), graph.op("/loss/exp", "Exp", List.of(graph.op("/loss/neg_abs", "Neg", List.of(abs))))))));
    String elementwise = graph.op("/loss/bce", "Add", List.of(
        graph.op("/loss/pos_minus_zy", "Sub", List.of(pos, graph.op("/loss/zy", "Mul", List.of(z, y)))), softplus));
    return graph.op("/loss/mean", "ReduceMean", List.of(elementwise), attr("axes", List.of(0L, 1L)), attr("keepdims", 0L));
  }
}
