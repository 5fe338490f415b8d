package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;

/**
 * The options of a merge method; each method reads the ones it names (see {@link MergeMethods}).
 *
 * @param density the fraction of each input's entries TIES and magnitude pruning keep, by magnitude, in (0, 1]
 * @param dropRate DARE's drop probability {@code p} in [0, 1); kept entries are multiplied by {@code 1/(1−p)}
 * @param lambda the scaling of the merged update of task arithmetic, TIES, DARE and magnitude pruning
 * @param seed DARE's seed: the same seed, inputs and sites give the same drops
 */
public record MergeOptions(double density, double dropRate, double lambda, long seed) {
  public MergeOptions {
    if (!(density > 0 && density <= 1)) {
      throw new GraftException(RuntimeErrorCode.MERGE_OPTION, "density must be in (0, 1], got " + density);
    }
    if (!(dropRate >= 0 && dropRate < 1)) {
      throw new GraftException(RuntimeErrorCode.MERGE_OPTION, "dropRate must be in [0, 1), got " + dropRate);
    }
    if (!Double.isFinite(lambda)) {
      throw new GraftException(RuntimeErrorCode.MERGE_OPTION, "lambda must be finite, got " + lambda);
    }
  }

  /** Density 0.2, drop rate 0.5, lambda 1, seed 42. */
  public static MergeOptions defaults() {
    return new MergeOptions(0.2, 0.5, 1.0, 42L);
  }

  public MergeOptions withDensity(double value) {
    return new MergeOptions(value, dropRate, lambda, seed);
  }

  public MergeOptions withDropRate(double value) {
    return new MergeOptions(density, value, lambda, seed);
  }

  public MergeOptions withLambda(double value) {
    return new MergeOptions(density, dropRate, value, seed);
  }

  public MergeOptions withSeed(long value) {
    return new MergeOptions(density, dropRate, lambda, value);
  }
}
