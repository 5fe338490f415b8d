package dev.graft.dsl.spec;

import org.jspecify.annotations.Nullable;

/**
 * A classification head over a pooled host output.
 *
 * @param hostOutput the host output to pool; empty for the host's first output
 */
public record ClassificationSpec(
    int numLabels, Pooling pooling, String hostOutput, @Nullable Object source) {

  /** How a [batch, sequence, hidden] output becomes [batch, hidden]. */
  public enum Pooling {
    MEAN,
    FIRST_TOKEN
  }
}
