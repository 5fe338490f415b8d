package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.Arrays;

/**
 * A tensor of the task head (PEFT's {@code modules_to_save}, e.g. {@code classifier.weight}) as an
 * adapter folder saves it: its key, saved shape and values. Heads are not weight updates of a
 * site: every method merges them as the weighted mean of the inputs' heads (weights normalized).
 */
public record HeadTensor(String key, long[] shape, double[] values) {
  public HeadTensor {
    long n = 1;
    for (long d : shape) {
      if (d < 0 || (d > 0 && n > Integer.MAX_VALUE / d)) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "head tensor " + key
            + ": expected dims of at most 2^31 values in all, given " + Arrays.toString(shape));
      }
      n *= d;
    }
    if (n != values.length) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "head tensor " + key + ": expected " + n
          + " values for shape " + Arrays.toString(shape) + ", given " + values.length);
    }
    for (int i = 0; i < values.length; i++) {
      if (!Double.isFinite(values[i])) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "head tensor " + key
            + ": expected finite values, given " + values[i] + " at index " + i);
      }
    }
    shape = shape.clone();
    values = values.clone();
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  @Override
  public double[] values() {
    return values.clone();
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof HeadTensor t && t.key.equals(key) && Arrays.equals(t.shape, shape)
        && Arrays.equals(t.values, values);
  }

  @Override
  public int hashCode() {
    return key.hashCode() * 31 + Arrays.hashCode(values);
  }

  @Override
  public String toString() {
    return "HeadTensor[" + key + " " + Arrays.toString(shape) + "]";
  }
}
