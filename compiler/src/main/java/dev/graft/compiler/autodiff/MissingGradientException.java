package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Node;

/** A node on the path from a trainable parameter to the loss has no gradient rule. */
public final class MissingGradientException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Node node;

  public MissingGradientException(Node node, String detail) {
    super("cannot differentiate " + node.opType() + " at node '" + node.name() + "': " + detail);
    this.node = node;
  }

  public Node node() {
    return node;
  }
}
