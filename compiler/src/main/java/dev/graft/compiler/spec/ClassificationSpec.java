package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * A classification head over a pooled host output, trained with softmax cross-entropy.
 *
 * @param hostOutput the host output to pool; empty for the host's first output
 * @param ignoreIndex labels equal to it contribute nothing to the loss
 * @param labelSmoothing ε in [0, 1): the loss is (1-ε)·NLL + ε·mean over classes of −log p
 */
public record ClassificationSpec(
    int numLabels,
    Pooling pooling,
    String hostOutput,
    long ignoreIndex,
    double labelSmoothing,
    @Nullable Object source) implements TaskSpec {

  /** Plain cross-entropy: ignore index -100, no label smoothing. */
  public ClassificationSpec(int numLabels, Pooling pooling, String hostOutput, @Nullable Object source) {
    this(numLabels, pooling, hostOutput, DEFAULT_IGNORE_INDEX, 0.0, source);
  }

  /** How a [batch, sequence, hidden] output becomes [batch, hidden]. */
  public enum Pooling {
    MEAN,
    FIRST_TOKEN
  }
}
