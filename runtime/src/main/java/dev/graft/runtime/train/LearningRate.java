package dev.graft.runtime.train;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.state.ParameterState;

/** A learning-rate schedule: the rate of each (0-based) step of a run of {@code totalSteps}. */
@FunctionalInterface
public interface LearningRate {
  float at(long step, long totalSteps);

  /** The same rate at every step. */
  static LearningRate constant(float rate) {
    check(rate);
    return (step, total) -> rate;
  }

  /**
   * Linear warmup from near 0 to {@code peak} over the first {@code ceil(warmupRatio * total)}
   * steps, then linear decay towards 0 (never exactly 0) at the last step, as Hugging Face's
   * {@code get_linear_schedule_with_warmup}.
   */
  static LearningRate linear(float peak, double warmupRatio) {
    check(peak);
    if (!(warmupRatio >= 0 && warmupRatio < 1)) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "warmupRatio must be in [0, 1), got " + warmupRatio);
    }
    return (step, total) -> {
      long warmup = (long) Math.ceil(warmupRatio * total);
      if (step < warmup) {
        return peak * (step + 1) / warmup;
      }
      long decay = Math.max(1, total - warmup);
      return peak * Math.max(0, total - step) / decay;
    };
  }

  private static void check(float rate) {
    ParameterState.checkLearningRate(rate);
  }
}
