package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Node;

/**
 * A node on the path from a trainable parameter to the loss has a rule, but the rule needs an
 * index (a Slice's starts, ends, axes or steps) that the host computes from the data at run time
 * rather than from fixed sizes, so constant folding cannot make it a constant.
 */
public final class DataDependentIndexException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient Node node;
  private final String index;

  public DataDependentIndexException(Node node, String index, String detail) {
    super(detail);
    this.node = node;
    this.index = index;
  }

  public Node node() {
    return node;
  }

  /** Which input of the node is data-dependent, e.g. "ends (input 2)". */
  public String index() {
    return index;
  }
}
