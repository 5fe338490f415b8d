package dev.graft.runtime.state;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.merge.Svd;
import org.jspecify.annotations.Nullable;

/**
 * CorDA's factors of a linear site (Yang et al., "CorDA: Context-Oriented Decomposition Adaptation
 * of Large Language Models", NeurIPS 2024), computed as PEFT's {@code collect_eigens_for_layer}
 * and {@code corda_init} compute them, in float64. With the host weight W {@code [in, out]}, its
 * PEFT layout {@code Wᵀ [out, in]}, and the input covariance C {@code [in, in]}:
 *
 * <ol>
 *   <li>damping: {@code C' = C + λ·I}, {@code λ = damp·mean(diag C)}, damp starting at 0.01 and
 *       doubled until {@code ‖C'·C'⁻¹ − I‖_F < 0.05};
 *   <li>{@code Wᵀ·C' = U·diag(S)·Vh} (thin SVD, S decreasing);
 *   <li>the r largest triplets (instruction-previewed mode) or the r smallest (knowledge-preserved);
 *   <li>{@code A = C'⁻¹·Vh_rᵀ·diag(sqrt(S_r/s))} {@code [in, r]}, {@code B = diag(sqrt(S_r/s))·U_rᵀ}
 *       {@code [r, out]} (PEFT's {@code lora_A}, {@code lora_B} transposed), s the LoRA scaling,
 *       so that {@code s·A·B = C'⁻¹·(U_r·S_r·Vh_r)ᵀ}; over every triplet that is W itself.
 * </ol>
 *
 * @param a {@code [in, r]} row-major
 * @param b {@code [r, out]} row-major
 * @param singularValues the r singular values of {@code Wᵀ·C'} taken, in the order of A's columns
 * @param damping λ, the multiple of the identity added to C
 */
public record CovarianceFactors(float[] a, float[] b, double[] singularValues, double damping) {
  private static final double FIRST_DAMP = 0.01;
  private static final double INVERSE_TOLERANCE = 0.05;
  private static final int MAX_DOUBLINGS = 64;

  /**
   * The factors of host weight {@code w} {@code [in, out]} (row-major) for covariance {@code c}
   * {@code [in, in]} at {@code rank}, LoRA scaling {@code scale}; {@code smallest}: the smallest
   * triplets. {@code source} names the site in errors.
   */
  public static CovarianceFactors of(String source, float[] w, int in, int out, double[] c, int rank, double scale,
      boolean smallest) {
    if (w.length != (long) in * out || c.length != (long) in * in) {
      throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, source + ": expected a weight of " + in + "×" + out
          + " and a covariance of " + in + "×" + in + " values, given " + w.length + " and " + c.length);
    }
    if (rank < 1 || rank > Math.min(in, out) || !(scale > 0)) {
      throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, source + ": expected rank in 1.." + Math.min(in, out)
          + " and a scaling > 0, given " + rank + " and " + scale);
    }
    double meanDiagonal = 0;
    for (int i = 0; i < in; i++) {
      meanDiagonal += c[i * in + i];
    }
    meanDiagonal /= in;
    if (!(meanDiagonal > 0) || !Double.isFinite(meanDiagonal)) {
      throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, source + ": the input covariance has mean diagonal "
          + meanDiagonal + "; expected a finite value > 0 (were the site's inputs all zero?)");
    }
    double damp = FIRST_DAMP;
    double[] damped = null;
    double[] inverse = null;
    for (int tries = 0; ; tries++) {
      damped = c.clone();
      double lambda = damp * meanDiagonal;
      for (int i = 0; i < in; i++) {
        damped[i * in + i] += lambda;
      }
      inverse = inverse(damped, in);
      if (inverse != null && inverseError(damped, inverse, in) < INVERSE_TOLERANCE) {
        break;
      }
      if (tries == MAX_DOUBLINGS) {
        throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, source + ": the damped input covariance could not"
            + " be inverted to within " + INVERSE_TOLERANCE + " (damping " + damp + ")");
      }
      damp *= 2;
    }
    // Wᵀ·C' [out, in]: (Wᵀ·C')[o][j] = Σ_i W[i][o]·C'[i][j].
    double[] wc = new double[out * in];
    for (int i = 0; i < in; i++) {
      for (int o = 0; o < out; o++) {
        double x = w[i * out + o];
        if (x == 0) {
          continue;
        }
        int row = o * in;
        int crow = i * in;
        for (int j = 0; j < in; j++) {
          wc[row + j] += x * damped[crow + j];
        }
      }
    }
    Svd svd = Svd.of(wc, out, in);
    int k = svd.s().length;
    double[] taken = new double[rank];
    float[] a = new float[in * rank];
    float[] b = new float[rank * out];
    for (int col = 0; col < rank; col++) {
      int t = smallest ? k - rank + col : col;
      double sv = svd.s()[t];
      taken[col] = sv;
      double root = Math.sqrt(sv / scale);
      // A[:, col] = C'⁻¹·Vh[t, :]ᵀ·root; svd.v() is [in, k] with Vh = vᵀ.
      for (int i = 0; i < in; i++) {
        double sum = 0;
        int irow = i * in;
        for (int j = 0; j < in; j++) {
          sum += inverse[irow + j] * svd.v()[j * k + t];
        }
        a[i * rank + col] = (float) (sum * root);
      }
      for (int o = 0; o < out; o++) {
        b[col * out + o] = (float) (root * svd.u()[o * k + t]);
      }
    }
    return new CovarianceFactors(a, b, taken, damp * meanDiagonal);
  }

  /** The inverse of symmetric positive definite {@code m} {@code [n, n]} by Cholesky; null when it is not positive definite. */
  static double @Nullable [] inverse(double[] m, int n) {
    double[] l = new double[n * n];
    for (int j = 0; j < n; j++) {
      double d = m[j * n + j];
      for (int k = 0; k < j; k++) {
        d -= l[j * n + k] * l[j * n + k];
      }
      if (!(d > 0)) {
        return null;
      }
      double root = Math.sqrt(d);
      l[j * n + j] = root;
      for (int i = j + 1; i < n; i++) {
        double s = m[i * n + j];
        for (int k = 0; k < j; k++) {
          s -= l[i * n + k] * l[j * n + k];
        }
        l[i * n + j] = s / root;
      }
    }
    // L⁻¹ (lower triangular), then M⁻¹ = L⁻ᵀ·L⁻¹.
    double[] li = new double[n * n];
    for (int j = 0; j < n; j++) {
      li[j * n + j] = 1 / l[j * n + j];
      for (int i = j + 1; i < n; i++) {
        double s = 0;
        for (int k = j; k < i; k++) {
          s -= l[i * n + k] * li[k * n + j];
        }
        li[i * n + j] = s / l[i * n + i];
      }
    }
    double[] inv = new double[n * n];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j <= i; j++) {
        double s = 0;
        for (int k = i; k < n; k++) {
          s += li[k * n + i] * li[k * n + j];
        }
        inv[i * n + j] = s;
        inv[j * n + i] = s;
      }
    }
    return inv;
  }

  /** {@code ‖m·inv − I‖_F}, PEFT's check of the inverse. */
  static double inverseError(double[] m, double[] inv, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < n; j++) {
        double x = 0;
        for (int k = 0; k < n; k++) {
          x += m[i * n + k] * inv[k * n + j];
        }
        double e = x - (i == j ? 1 : 0);
        sum += e * e;
      }
    }
    return Math.sqrt(sum);
  }
}
