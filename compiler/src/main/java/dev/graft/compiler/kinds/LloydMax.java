package dev.graft.compiler.kinds;

import java.util.Arrays;

/**
 * Lloyd-Max quantizers of the standard normal N(0, 1) at 1, 2, 4 and 8 bits: the 2^b levels
 * minimizing the mean squared error, found by the Lloyd-Max iteration (each threshold the
 * midpoint of its two levels, each level the conditional mean of its cell) from uniform levels to
 * convergence, once per width on first use (8 bits takes some 70,000 iterations, seconds). 1 bit gives ±√(2/π); 2 bits ±0.4528, ±1.5104 with
 * thresholds 0, ±0.9816 (Max, "Quantizing for minimum distortion", IRE Trans. IT 1960).
 */
public final class LloydMax {
  /** The bit widths a quantized adapter may use. */
  public static final int[] BITS = {1, 2, 4, 8};

  private static final double[][] LEVELS = new double[9][];

  private LloydMax() {}

  /** Whether {@code bits} is one of {@link #BITS}. */
  public static boolean supported(int bits) {
    return Arrays.stream(BITS).anyMatch(b -> b == bits);
  }

  /** The 2^bits levels, ascending. */
  public static double[] levels(int bits) {
    return table(bits).clone();
  }

  private static synchronized double[] table(int bits) {
    check(bits);
    if (LEVELS[bits] == null) {
      LEVELS[bits] = solve(1 << bits);
    }
    return LEVELS[bits];
  }

  /** The 2^bits − 1 thresholds, ascending: the midpoints of adjacent levels. */
  public static double[] thresholds(int bits) {
    return midpoints(table(bits));
  }

  private static void check(int bits) {
    if (!supported(bits)) {
      throw new IllegalArgumentException("quantized adapters take 1, 2, 4 or 8 bits, got " + bits);
    }
  }

  private static double[] midpoints(double[] y) {
    double[] t = new double[y.length - 1];
    for (int i = 0; i < t.length; i++) {
      t[i] = (y[i] + y[i + 1]) / 2;
    }
    return t;
  }

  /**
   * The Lloyd-Max iteration for {@code n} levels, until no level moves by more than 1e-10, started
   * from the high-resolution optimum (Panter-Dite: level density ∝ pdf^(1/3), i.e. the quantiles
   * of N(0, 3)).
   */
  static double[] solve(int n) {
    double[] y = new double[n];
    for (int i = 0; i < n; i++) {
      y[i] = Math.sqrt(3) * quantile((i + 0.5) / n);
    }
    for (int iter = 0; iter < 200_000; iter++) {
      double[] t = midpoints(y);
      double moved = 0;
      for (int i = 0; i < n; i++) {
        double a = i == 0 ? Double.NEGATIVE_INFINITY : t[i - 1];
        double b = i == n - 1 ? Double.POSITIVE_INFINITY : t[i];
        double next = (pdf(a) - pdf(b)) / mass(a, b);
        moved = Math.max(moved, Math.abs(next - y[i]));
        y[i] = next;
      }
      // Symmetric by construction; keep it exactly so.
      for (int i = 0; i < n / 2; i++) {
        double m = (y[n - 1 - i] - y[i]) / 2;
        y[i] = -m;
        y[n - 1 - i] = m;
      }
      if (moved < 1e-10) {
        return y;
      }
    }
    throw new AssertionError("Lloyd-Max iteration for " + n + " levels did not converge");
  }

  /** Φ⁻¹(p) by bisection. */
  static double quantile(double p) {
    double lo = -40;
    double hi = 40;
    for (int i = 0; i < 200; i++) {
      double mid = (lo + hi) / 2;
      double cdf = mid >= 0 ? 1 - upperTail(mid) : upperTail(-mid);
      if (cdf < p) {
        lo = mid;
      } else {
        hi = mid;
      }
    }
    return (lo + hi) / 2;
  }

  static double pdf(double x) {
    return Double.isInfinite(x) ? 0 : Math.exp(-x * x / 2) / Math.sqrt(2 * Math.PI);
  }

  /** P(a < X < b) for X ~ N(0, 1), from upper tails so that far cells keep their precision. */
  static double mass(double a, double b) {
    if (a >= 0) {
      return upperTail(a) - upperTail(b);
    }
    if (b <= 0) {
      return upperTail(-b) - upperTail(-a);
    }
    return 1 - upperTail(-a) - upperTail(b);
  }

  /** P(X > x) = erfc(x / √2) / 2 for x ≥ 0 (series below 3, continued fraction above). */
  static double upperTail(double x) {
    if (Double.isInfinite(x)) {
      return 0;
    }
    double z = x / Math.sqrt(2);
    if (z < 3) {
      // erf(z) = 2/√π Σ (−1)^k z^(2k+1) / (k! (2k+1))
      double term = z;
      double sum = z;
      for (int k = 1; k < 200; k++) {
        term *= -z * z / k;
        double add = term / (2 * k + 1);
        sum += add;
        if (Math.abs(add) < 1e-17 * Math.abs(sum)) {
          break;
        }
      }
      return (1 - 2 / Math.sqrt(Math.PI) * sum) / 2;
    }
    // erfc(z) = exp(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))) by Lentz's method.
    double tiny = 1e-300;
    double f = z;
    double c = z;
    double d = 0;
    for (int k = 1; k < 500; k++) {
      double ak = k / 2.0;
      d = z + ak * d;
      d = d == 0 ? tiny : d;
      c = z + ak / c;
      c = c == 0 ? tiny : c;
      d = 1 / d;
      double delta = c * d;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) {
        break;
      }
    }
    return Math.exp(-z * z) / Math.sqrt(Math.PI) / f / 2;
  }
}
