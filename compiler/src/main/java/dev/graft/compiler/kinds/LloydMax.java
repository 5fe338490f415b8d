package dev.graft.compiler.kinds;

import java.util.Arrays;

/**
 * Lloyd-Max quantizers of the standard normal N(0, 1) at 1, 2, 4 and 8 bits: the 2^b levels
 * minimizing the mean squared error, found by the Lloyd-Max iteration (each threshold the
 * midpoint of its two levels, each level the conditional mean of its cell) to convergence
 * ({@link #solve}), and kept as constants that a test solves again. 1 bit gives ±√(2/π); 2 bits
 * ±0.4528, ±1.5104 with thresholds 0, ±0.9816 (Max, "Quantizing for minimum distortion", IRE
 * Trans. IT 1960).
 */
public final class LloydMax {
  /** The bit widths a quantized adapter may use. */
  public static final int[] BITS = {1, 2, 4, 8};

  /**
   * The positive half of each width's levels, ascending (the negative half is its mirror), as
   * {@link #solve} computes them; written out once so that no compilation waits for the iteration
   * (8 bits: some 70,000 iterations, seconds). {@code LloydMaxTest} solves again and compares.
   */
  private static final double[][] POSITIVE = {
    null,
    {
      0.7978845608028654
    },
    {
      0.45278003468968925, 1.5104176086089323
    },
    null,
    {
      0.12839503021934634, 0.3880483005680186, 0.6567591202411777, 0.9423404587023358,
      1.2562311999078548, 1.6180463887391225, 2.069017229194688, 2.732589573352632
    },
    null,
    null,
    null,
    {
      0.008446195864868099, 0.025339391024869665, 0.04223499701070327, 0.05913462282410418,
      0.0760398801468388, 0.09295238441914234, 0.10987375592478249, 0.12680562088440664,
      0.143749612559337, 0.16070737236754423, 0.1776805510139925, 0.1946708096372588,
      0.2116798209746769, 0.2287092705479445, 0.2457608578717213, 0.2628362976872468,
      0.27993732122360654, 0.29706567748890217, 0.3142231345943189, 0.33141148111317675,
      0.3486325274785402, 0.36588810742177, 0.38318007945558946, 0.40051032840447126,
      0.4178807669864546, 0.4352933374494881, 0.45275001326635783, 0.4702528008926728,
      0.48780374159149753, 0.5054049133301775, 0.5230584327534262, 0.5407664572385439,
      0.5585311870379907, 0.5763548675154938, 0.5942397914817615, 0.6121883016370482,
      0.6302027931274938, 0.6482857162232022, 0.6664395791263981, 0.6846669509188646,
      0.7029704646579606, 0.7213528206321941, 0.7398167897869895, 0.7583652173333817,
      0.777001026552164, 0.7957272228081653, 0.8145468977895673, 0.8334632339892717,
      0.8524795094455075, 0.8715991027627747, 0.8908254984322658, 0.9101622924768348,
      0.9296131984443671, 0.9491820537773701, 0.9688728265895137, 0.9886896228798735,
      1.0086366942237264, 1.02871844597585, 1.0489394460320294, 1.0693044341946376,
      1.0898183321950312, 1.1104862544301846, 1.1313135194755364, 1.1523056624466872,
      1.1734684482840962, 1.1948078860487739, 1.2163302443231558, 1.2380420678236812,
      1.2599501953411036, 1.282061779142421, 1.304384305978405, 1.3269256198637847,
      1.349693946812887, 1.3726979217368869, 1.395946617738411, 1.4194495780648373,
      1.4432168510191552, 1.4672590281628073, 1.4915872862001245, 1.5162134329726844,
      1.5411499580695867, 1.5664100886183492, 1.5920078509162903, 1.6179581386513107,
      1.6442767885882406, 1.6709806647226888, 1.6980877520786755, 1.7256172615117928,
      1.7535897471169604, 1.7820272381149993, 1.8109533874279027, 1.8403936395598886,
      1.8703754208901426, 1.9009283560902235, 1.932084515118437, 1.9638786961467403,
      1.9963487509384659, 2.0295359605738845, 2.063485471256875, 2.098246802149634,
      2.133874440117852, 2.1704285399541803, 2.207975753494982, 2.246590217356177,
      2.2863547373646282, 2.3273622189160985, 2.369717407552993, 2.413539024664501,
      2.4589624116737303, 2.5061428362036446, 2.5552596707271387, 2.6065217372106932,
      2.6601742336938763, 2.7165078436648593, 2.7758709146863234, 2.838686045463941,
      2.9054731588746114, 2.9768823851790396, 3.0537422636634046, 3.137132774927885,
      3.2285004491828557, 3.329848703578741, 3.444071906311178, 3.5755881944487276,
      3.7316664773881634, 3.9256379901116913, 4.186595639040871, 4.603535793353637
    },
  };

  private LloydMax() {}

  /** Whether {@code bits} is one of {@link #BITS}. */
  public static boolean supported(int bits) {
    return Arrays.stream(BITS).anyMatch(b -> b == bits);
  }

  /** The 2^bits levels, ascending. */
  public static double[] levels(int bits) {
    check(bits);
    double[] half = POSITIVE[bits];
    double[] y = new double[2 * half.length];
    for (int i = 0; i < half.length; i++) {
      y[half.length + i] = half[i];
      y[half.length - 1 - i] = -half[i];
    }
    return y;
  }

  /** The 2^bits − 1 thresholds, ascending: the midpoints of adjacent levels. */
  public static double[] thresholds(int bits) {
    return midpoints(levels(bits));
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
