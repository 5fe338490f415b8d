package dev.graft.compiler.op;

/**
 * The op DSL's functions as static methods, for definitions that read better as {@code
 * sigmoid(gate)} than {@code gate.sigmoid()}: {@code import static dev.graft.compiler.op.Ops.*;}.
 * Each is the {@link Tensor} method of the same name.
 */
public final class Ops {
  private Ops() {}

  public static Tensor relu(Tensor x) {
    return x.relu();
  }

  public static Tensor gelu(Tensor x) {
    return x.gelu();
  }

  public static Tensor tanh(Tensor x) {
    return x.tanh();
  }

  public static Tensor sigmoid(Tensor x) {
    return x.sigmoid();
  }

  public static Tensor exp(Tensor x) {
    return x.exp();
  }

  public static Tensor log(Tensor x) {
    return x.log();
  }

  public static Tensor sqrt(Tensor x) {
    return x.sqrt();
  }

  public static Tensor softmax(Tensor x) {
    return x.softmax();
  }

  public static Tensor softmax(Tensor x, int axis) {
    return x.softmax(axis);
  }

  public static Tensor mean(Tensor x) {
    return x.mean();
  }

  public static Tensor sum(Tensor x) {
    return x.sum();
  }

  public static Tensor layerNorm(Tensor x, Tensor scale, Tensor bias) {
    return x.layerNorm(scale, bias);
  }

  public static Tensor matmul(Tensor a, Tensor b) {
    return a.matmul(b);
  }

  public static Tensor transpose(Tensor x) {
    return x.transpose();
  }

  public static Tensor stopGradient(Tensor x) {
    return x.stopGradient();
  }
}
