package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Node;

/**
 * A node on the path from a trainable parameter to the loss cannot be differentiated: its op has
 * no gradient rule ({@link #ruleMissing()}), or its rule cannot apply to this node (the reason is
 * {@link #detail()}).
 */
public final class MissingGradientException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Node node;
  private final String detail;
  private final boolean ruleMissing;

  /** The op's rule cannot apply to {@code node}, for the reason {@code detail}. */
  public MissingGradientException(Node node, String detail) {
    this(node, detail, false);
  }

  private MissingGradientException(Node node, String detail, boolean ruleMissing) {
    super("cannot differentiate " + node.opType() + " at node '" + node.name() + "': " + detail);
    this.node = node;
    this.detail = detail;
    this.ruleMissing = ruleMissing;
  }

  /** The op of {@code node} has no gradient rule. */
  static MissingGradientException noRule(Node node, String detail) {
    return new MissingGradientException(node, detail, true);
  }

  public Node node() {
    return node;
  }

  /** Why the node cannot be differentiated. */
  public String detail() {
    return detail;
  }

  /** Whether the op has no gradient rule at all (rather than a rule that cannot apply here). */
  public boolean ruleMissing() {
    return ruleMissing;
  }
}
