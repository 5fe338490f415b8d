package dev.graft.runtime.train;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.List;

/**
 * The gradient of one batch's mean loss with respect to every trained parameter, flat: the
 * trained (not frozen) parameters' values one after the other in manifest order, each in its
 * row-major layout, as {@code AdapterModel.getParameterVector()} lays out the parameters.
 *
 * @param loss the batch's mean loss
 * @param examples the batch's rows: the weight of this gradient in an average over batches, so
 *     that replicas with batches of unequal size average to the gradient of the whole batch's mean
 *     loss (exact for losses that are a mean over rows)
 * @param values the gradient
 */
public record Gradients(float loss, long examples, float[] values) {
  public Gradients {
    if (examples <= 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "a gradient's examples must be > 0, got " + examples);
    }
  }

  /**
   * The average of {@code parts} weighted by their examples, summed in list order (so every caller
   * with the same list gets the same bits): the gradient of the mean loss over all their rows.
   */
  public static Gradients average(List<Gradients> parts) {
    if (parts.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "no gradients to average");
    }
    int n = parts.get(0).values().length;
    double[] sum = new double[n + 1];
    long examples = 0;
    for (Gradients g : parts) {
      if (g.values().length != n) {
        throw new GraftException(RuntimeErrorCode.TENSOR_MISMATCH,
            "gradients to average have " + n + " and " + g.values().length + " values");
      }
      float[] w = g.weighted();
      for (int i = 0; i <= n; i++) {
        sum[i] += w[i];
      }
      examples += g.examples();
    }
    float[] s = new float[n + 2];
    for (int i = 0; i <= n; i++) {
      s[i] = (float) sum[i];
    }
    s[n + 1] = examples;
    return fromWeightedSum(s);
  }

  /**
   * This gradient as an all-reduce payload: {@code examples·values}, then {@code examples·loss},
   * then {@code examples}; the element-wise sum of the payloads of several replicas is read back
   * with {@link #fromWeightedSum}.
   */
  public float[] weighted() {
    float[] out = new float[values.length + 2];
    float w = examples;
    for (int i = 0; i < values.length; i++) {
      out[i] = values[i] * w;
    }
    out[values.length] = loss * w;
    out[values.length + 1] = w;
    return out;
  }

  /** The weighted average that a sum of {@link #weighted()} payloads stands for. */
  public static Gradients fromWeightedSum(float[] sum) {
    if (sum.length < 2) {
      throw new GraftException(RuntimeErrorCode.TENSOR_MISMATCH, "a weighted gradient sum has at least 2 values, got "
          + sum.length);
    }
    int n = sum.length - 2;
    float examples = sum[n + 1];
    if (!(examples >= 1) || examples != Math.rint(examples) || examples > (1 << 24)) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "a weighted gradient sum's example count must be a whole number in [1, 2^24], got " + examples);
    }
    float[] values = new float[n];
    for (int i = 0; i < n; i++) {
      values[i] = sum[i] / examples;
    }
    return new Gradients(sum[n] / examples, (long) examples, values);
  }
}
