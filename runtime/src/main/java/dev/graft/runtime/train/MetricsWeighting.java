package dev.graft.runtime.train;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.List;
import java.util.Locale;

/**
 * MWA-style weights of checkpoints: {@code w_i = m_i^p / Σ_j m_j^p}, with one metric {@code m}
 * per checkpoint and one penalty exponent {@code p ≥ 0} ({@code p = 0} is the uniform average,
 * larger {@code p} moves the weight towards the checkpoints with the larger {@code m}).
 *
 * <ul>
 *   <li>{@link Metric#LOSS}: {@code m = 1 / loss}, the mean training loss of the checkpoint's window
 *       (lower loss, more weight);
 *   <li>{@link Metric#STEP}: {@code m = step} (later, more weight);
 *   <li>{@link Metric#HELD_OUT}: {@code m} = the held-out metric the keeper recorded (higher, more
 *       weight; for a metric where lower is better, record its inverse).
 * </ul>
 *
 * This follows the description of Metrics-Weighted Averaging (arXiv 2504.18580: weights from the
 * training loss or the step with a single penalty factor); the paper's exact formula was not
 * available to us, so this is "MWA-style", not a reproduction. Every {@code m} must be finite and
 * positive (a loss {@code > 0}), else {@code GRAFT-R142}. Computed in log space ({@code p ln m_i}
 * minus its maximum), so large exponents and steps do not overflow.
 *
 * @param metric what {@code m} is
 * @param exponent the penalty exponent {@code p}
 */
public record MetricsWeighting(Metric metric, double exponent) {
  /** What a checkpoint's {@code m} is. */
  public enum Metric {
    /** {@code m = 1 / training loss of the checkpoint's window}. */
    LOSS,
    /** {@code m = step}. */
    STEP,
    /** {@code m} = the held-out metric recorded with the checkpoint. */
    HELD_OUT
  }

  public MetricsWeighting {
    java.util.Objects.requireNonNull(metric, "metric");
    if (!(exponent >= 0) || Double.isInfinite(exponent)) {
      throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS,
          "the exponent p must be finite and >= 0, got " + exponent);
    }
  }

  /** Equal weights ({@code p = 0}). */
  public static MetricsWeighting uniform() {
    return new MetricsWeighting(Metric.STEP, 0);
  }

  /** Loss-weighted: {@code w ∝ (1/loss)^p}. */
  public static MetricsWeighting loss(double p) {
    return new MetricsWeighting(Metric.LOSS, p);
  }

  /** Step-weighted: {@code w ∝ step^p}. */
  public static MetricsWeighting step(double p) {
    return new MetricsWeighting(Metric.STEP, p);
  }

  /** Weighted by the recorded held-out metric: {@code w ∝ metric^p}. */
  public static MetricsWeighting heldOut(double p) {
    return new MetricsWeighting(Metric.HELD_OUT, p);
  }

  /** A short label, e.g. {@code loss p=0.5}, {@code uniform}. */
  public String label() {
    return exponent == 0 ? "uniform" : metric.name().toLowerCase(Locale.ROOT) + " p=" + exponent;
  }

  /** The metric {@code m} of one checkpoint ({@code GRAFT-R142} when it has none or it is not finite and positive). */
  public double value(KeptCheckpoints.Checkpoint c) {
    double m = switch (metric) {
      case LOSS -> 1 / c.trainLoss();
      case STEP -> c.step();
      case HELD_OUT -> {
        if (c.metric() == null) {
          throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS, "the checkpoint of step " + c.step()
              + " has no held-out metric recorded; keep checkpoints with CheckpointKeeper.Builder.metric");
        }
        yield c.metric();
      }
    };
    if (!(m > 0) || Double.isInfinite(m)) {
      throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS, "the checkpoint of step " + c.step() + " has "
          + (metric == Metric.LOSS ? "training loss " + c.trainLoss() + ", so m = 1/loss = " + m
              : metric.name().toLowerCase(Locale.ROOT) + " m = " + m)
          + "; weighting needs every m finite and > 0");
    }
    return m;
  }

  /** The normalized weights of {@code checkpoints}, in their order (they sum to 1). */
  public double[] weights(List<KeptCheckpoints.Checkpoint> checkpoints) {
    if (checkpoints.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS, "no checkpoints to weight");
    }
    double[] logs = new double[checkpoints.size()];
    double max = Double.NEGATIVE_INFINITY;
    for (int i = 0; i < logs.length; i++) {
      logs[i] = exponent == 0 ? 0 : exponent * Math.log(value(checkpoints.get(i)));
      max = Math.max(max, logs[i]);
    }
    double sum = 0;
    double[] w = new double[logs.length];
    for (int i = 0; i < w.length; i++) {
      w[i] = Math.exp(logs[i] - max);
      sum += w[i];
    }
    for (int i = 0; i < w.length; i++) {
      w[i] /= sum;
    }
    return w;
  }
}
