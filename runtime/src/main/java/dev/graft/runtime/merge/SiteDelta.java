package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.Arrays;
import org.jspecify.annotations.Nullable;

/**
 * The weight update of one linear site, {@code y = x·(W + ΔW) + (b + Δb)}, in the layer's
 * {@code [in, out]} space (whatever the host stores): dense ({@code ΔW} itself, row-major) or
 * factored ({@code ΔW = A·B}, {@code A [in, rank]}, {@code B [rank, out]}, the kind's scaling
 * already inside). The bias change {@code Δb [out]} is zeros where the kind leaves the bias alone.
 * Immutable: arrays are copied in and out; float64 throughout.
 */
public final class SiteDelta {
  private final String site;
  private final int in;
  private final int out;
  private final int rank;
  private final double @Nullable [] a;
  private final double @Nullable [] b;
  private final double[] bias;
  private double @Nullable [] weight;

  private SiteDelta(String site, int in, int out, int rank, double @Nullable [] a, double @Nullable [] b,
      double @Nullable [] weight, double[] bias) {
    this.site = site;
    this.in = in;
    this.out = out;
    this.rank = rank;
    this.a = a;
    this.b = b;
    this.weight = weight;
    this.bias = bias;
  }

  /** A dense update {@code ΔW [in, out]} (row-major) with bias change {@code bias [out]} (null: none). */
  public static SiteDelta dense(String site, int in, int out, double[] weight, double @Nullable [] bias) {
    widths(site, in, out);
    length(site, "ΔW", weight, (long) in * out);
    return new SiteDelta(site, in, out, 0, null, null, finite(site, "ΔW", weight.clone()), bias(site, out, bias));
  }

  /** A factored update {@code ΔW = A·B}, {@code a [in, rank]} and {@code b [rank, out]} row-major. */
  public static SiteDelta factored(String site, int in, int out, int rank, double[] a, double[] b,
      double @Nullable [] bias) {
    widths(site, in, out);
    if (rank < 1) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + site + ": expected a rank of at least 1, given "
          + rank);
    }
    length(site, "A", a, (long) in * rank);
    length(site, "B", b, (long) rank * out);
    return new SiteDelta(site, in, out, rank, finite(site, "A", a.clone()), finite(site, "B", b.clone()), null,
        bias(site, out, bias));
  }

  /** The site's module path, e.g. {@code encoder.layer.0.attention.self.query}. */
  public String site() {
    return site;
  }

  /** The layer's input width. */
  public int in() {
    return in;
  }

  /** The layer's output width. */
  public int out() {
    return out;
  }

  /** Whether the update is held as factors {@code A·B}. */
  public boolean isFactored() {
    return a != null;
  }

  /** The factors' rank; for a dense update, {@code min(in, out)} (the most it can have). */
  public int rank() {
    return a != null ? rank : Math.min(in, out);
  }

  /** {@code ΔW [in, out]}, row-major (for a factored update, {@code A·B} summed in float64). */
  public double[] weight() {
    return weightView().clone();
  }

  /** {@code A [in, rank]}; only for a factored update. */
  public double[] a() {
    return factor(a).clone();
  }

  /** {@code B [rank, out]}; only for a factored update. */
  public double[] b() {
    return factor(b).clone();
  }

  /** {@code Δb [out]} (zeros when the bias is left alone). */
  public double[] bias() {
    return bias.clone();
  }

  /** Whether any entry of the bias change is nonzero. */
  public boolean changesBias() {
    for (double v : bias) {
      if (v != 0) {
        return true;
      }
    }
    return false;
  }

  /** The update times {@code factor} (both {@code ΔW} and {@code Δb}; a factored update scales {@code A}). */
  public SiteDelta times(double factor) {
    double[] nb = bias.clone();
    for (int j = 0; j < nb.length; j++) {
      nb[j] *= factor;
    }
    if (a != null) {
      double[] na = a.clone();
      for (int i = 0; i < na.length; i++) {
        na[i] *= factor;
      }
      return factored(site, in, out, rank, na, factor(b), nb);
    }
    double[] w = weightView().clone();
    for (int i = 0; i < w.length; i++) {
      w[i] *= factor;
    }
    return dense(site, in, out, w, nb);
  }

  /** The Frobenius norm of {@code ΔW}. */
  public double norm() {
    double s = 0;
    for (double v : weightView()) {
      s += v * v;
    }
    return Math.sqrt(s);
  }

  /** {@code ΔW} without a copy, for this package's methods (never written to). */
  double[] weightView() {
    double[] w = weight;
    if (w == null) {
      double[] fa = factor(a);
      double[] fb = factor(b);
      w = new double[in * out];
      for (int i = 0; i < in; i++) {
        int row = i * out;
        for (int k = 0; k < rank; k++) {
          double aik = fa[i * rank + k];
          if (aik == 0) {
            continue;
          }
          int bk = k * out;
          for (int j = 0; j < out; j++) {
            w[row + j] += aik * fb[bk + j];
          }
        }
      }
      weight = w;
    }
    return w;
  }

  double[] aView() {
    return factor(a);
  }

  double[] bView() {
    return factor(b);
  }

  double[] biasView() {
    return bias;
  }

  private double[] factor(double @Nullable [] f) {
    if (f == null) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + site
          + ": expected a factored update (A·B), given a dense ΔW; re-factor it with MergeResult.toRank first");
    }
    return f;
  }

  private static void widths(String site, int in, int out) {
    if (in < 1 || out < 1 || (long) in * out > Integer.MAX_VALUE - 8) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + site
          + ": expected widths in, out of at least 1 and in·out below 2^31, given [" + in + ", " + out + "]");
    }
  }

  private static void length(String site, String what, double[] v, long expected) {
    if (v.length != expected) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + site + ": expected " + expected
          + " values of " + what + ", given " + v.length);
    }
  }

  private static double[] finite(String site, String what, double[] v) {
    for (int i = 0; i < v.length; i++) {
      if (!Double.isFinite(v[i])) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + site + ": expected finite values of "
            + what + ", given " + v[i] + " at index " + i);
      }
    }
    return v;
  }

  private static double[] bias(String site, int out, double @Nullable [] bias) {
    if (bias == null) {
      return new double[out];
    }
    length(site, "Δb", bias, out);
    return finite(site, "Δb", bias.clone());
  }

  @Override
  public String toString() {
    return "SiteDelta[" + site + " [" + in + ", " + out + "] " + (a != null ? "rank " + rank : "dense")
        + (changesBias() ? ", bias" : "") + "]";
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof SiteDelta d && d.site.equals(site) && d.in == in && d.out == out
        && Arrays.equals(d.weightView(), weightView()) && Arrays.equals(d.bias, bias);
  }

  @Override
  public int hashCode() {
    return site.hashCode() * 31 + Arrays.hashCode(weightView());
  }
}
