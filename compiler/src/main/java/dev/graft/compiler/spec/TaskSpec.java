package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * What is trained on top of the host: a head (or none) and its loss. Every task reads one host
 * output ({@link #hostOutput()}, empty for the host's first output).
 */
public sealed interface TaskSpec permits ClassificationSpec, RegressionSpec, MultiLabelSpec, CausalLmSpec,
    TokenClassificationSpec {
  /** The ignore index of PyTorch's and Hugging Face's losses. */
  long DEFAULT_IGNORE_INDEX = -100;

  /** The host output the task reads; empty for the host's first output. */
  String hostOutput();

  /** Where the task was declared, for diagnostics only. */
  @Nullable Object source();
}
