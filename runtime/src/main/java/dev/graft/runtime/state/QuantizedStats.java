package dev.graft.runtime.state;

/**
 * The {@code [μ, σ]} a quantized parameter's forward pass reads from its frozen companion
 * parameter ({@code Init.QUANTIZE_STATS}): the mean and the sample standard deviation (divisor
 * n − 1, as the reference code's {@code torch.std}) of the parameter's float32 values, summed in
 * double and rounded to float32; σ = 0 for a single value.
 */
public final class QuantizedStats {
  private QuantizedStats() {}

  /** {@code [μ, σ]} of {@code w}. */
  public static float[] of(float[] w) {
    double mean = 0;
    for (float x : w) {
      mean += x;
    }
    mean /= w.length;
    double squares = 0;
    for (float x : w) {
      squares += (x - mean) * (x - mean);
    }
    double std = w.length > 1 ? Math.sqrt(squares / (w.length - 1)) : 0;
    return new float[] {(float) mean, (float) std};
  }
}
