package dev.graft.compiler.autodiff;

import static dev.graft.compiler.autodiff.RuleHelpers.nullsAfter;
import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.FusedOps;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of activations (Tanh, Sigmoid, Relu, LeakyRelu), the softmax family and
 * Dropout.
 */
final class ActivationGradients {
  private ActivationGradients() {}

  static List<@Nullable String> tanh(Node n, List<@Nullable String> g, Grad c) {
    String y = n.output(0);
    return List.of(c.mul(g.get(0), c.op("Sub", List.of(c.scalar(1, y), c.mul(y, y)))));
  }

  /**
   * com.microsoft Gelu, y = x·Φ(x) with Φ the standard normal CDF: dy/dx = Φ(x) + x·φ(x), as one
   * fused {@code dev.graft:GeluGrad(g, x)} ({@link FusedOps}): one kernel where the runtime
   * registers Graft's, otherwise its function body of ten elementwise ai.onnx ops. Reads only x
   * (the forward's erf is inside ONNX Runtime's Gelu kernel, so the backward computes it once more:
   * cheaper than saving it).
   */
  static List<@Nullable String> gelu(Node n, List<@Nullable String> g, Grad c) {
    return List.of(c.fusedOp(FusedOps.GELU_GRAD, List.of(g.get(0), n.input(0))));
  }

  /**
   * com.microsoft FastGelu (the fused tanh-GELU, no bias input), y = ½·x·(1 + tanh(u)) with
   * u = √(2/π)·(x + 0.044715·x³): dy/dx = ½·(1 + t) + ½·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²)
   * with t = tanh(u); reads only x (the forward's tanh is inside the fused kernel, so the
   * backward computes it once more: cheaper than saving it).
   */
  static List<@Nullable String> fastGelu(Node n, List<@Nullable String> g, Grad c) {
    if (n.inputs().size() > 1 && !n.input(1).isEmpty()) {
      throw new MissingGradientException(n, "FastGelu with a bias input has no gradient rule (import fusion writes none)");
    }
    String x = n.input(0);
    double k = Math.sqrt(2 / Math.PI);
    String x2 = c.mul(x, x);
    String t = c.op("Tanh", List.of(c.mul(c.mul(x, c.op("Add", List.of(c.mul(x2, c.scalar(0.044715, x)),
        c.scalar(1, x)))), c.scalar(k, x))));
    String du = c.op("Add", List.of(c.mul(x2, c.scalar(3 * 0.044715 * k, x)), c.scalar(k, x)));
    String sech2 = c.op("Sub", List.of(c.scalar(1, x), c.mul(t, t)));
    String derivative = c.mul(c.op("Add", List.of(c.op("Add", List.of(t, c.scalar(1, x))), c.mul(c.mul(x, sech2), du))),
        c.scalar(0.5, x));
    return List.of(c.mul(g.get(0), derivative));
  }

  static List<@Nullable String> sigmoid(Node n, List<@Nullable String> g, Grad c) {
    String y = n.output(0);
    return List.of(c.mul(g.get(0), c.mul(y, c.op("Sub", List.of(c.scalar(1, y), y)))));
  }

  static List<@Nullable String> relu(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    String positive = c.op("Greater", List.of(x, c.scalar(0, x)));
    return List.of(c.op("Where", List.of(positive, g.get(0), c.scalar(0, x))));
  }

  static List<@Nullable String> leakyRelu(Node n, List<@Nullable String> g, Grad c) {
    // Slope 1 where x > 0, alpha elsewhere (x = 0 included, as Relu's rule takes 0 there).
    String x = n.input(0);
    String positive = c.op("Greater", List.of(x, c.scalar(0, x)));
    String leaky = c.mul(g.get(0), c.scalar(n.attrFloat("alpha", 0.01f), x));
    return List.of(c.op("Where", List.of(positive, g.get(0), leaky)));
  }

  /**
   * dx = y·(g − Σ g·y) over the softmax's axis; over the last axis of a float32 softmax as one
   * fused {@code dev.graft:SoftmaxGrad(g, y)} ({@link FusedOps}).
   */
  static List<@Nullable String> softmax(Node n, List<@Nullable String> g, Grad c) {
    String y = n.output(0);
    TensorType ty = c.type(y);
    long axis = n.attrInt("axis", -1);
    if (ty.elemType() == TensorType.FLOAT && (axis == -1 || ty.hasRank() && axis == ty.rank() - 1)) {
      return List.of(c.fusedOp(FusedOps.SOFTMAX_GRAD, List.of(g.get(0), y)));
    }
    String axes = c.longs(List.of(axis));
    String dot = c.op("ReduceSum", List.of(c.mul(g.get(0), y), axes), attr("keepdims", 1L));
    return List.of(c.mul(y, c.op("Sub", List.of(g.get(0), dot))));
  }

  static List<@Nullable String> logSoftmax(Node n, List<@Nullable String> g, Grad c) {
    String y = n.output(0);
    String axes = c.longs(List.of(n.attrInt("axis", -1)));
    String sum = c.op("ReduceSum", List.of(g.get(0), axes), attr("keepdims", 1L));
    return List.of(c.op("Sub", List.of(g.get(0), c.mul(c.op("Exp", List.of(y)), sum))));
  }

  static List<@Nullable String> dropout(Node n, List<@Nullable String> g, Grad c) {
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
  }
}
