package dev.graft.compiler.kinds.lora;

import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * The Kronecker-product SVD (Van Loan and Pitsianis, 1993) of a weight {@code W [in, out]} with
 * {@code in = i1·i2}, {@code out = o1·o2}: the rearrangement {@code R(W) [i1·o1, i2·o2]}, whose
 * row {@code a·o1 + c} is the block {@code W[a·i2 .. , c·o2 ..] [i2, o2]} read row-major, has the
 * SVD {@code Σ σ_k u_k v_kᵀ}, and {@code W = Σ_k σ_k U_k ⊗ V_k} with {@code U_k = unvec(u_k) [i1,
 * o1]}, {@code V_k = unvec(v_k) [i2, o2]}; the first K terms are the best sum of K Kronecker
 * products in the Frobenius norm. The SVD is one-sided Jacobi (Hestenes) in double precision.
 */
public final class KroneckerSvd {
  private KroneckerSvd() {}

  /**
   * The decomposition: singular values in descending order, and the factors scaled by {@code
   * √σ_k} as SoKA starts them ({@code A_k = √σ_k U_k}, {@code B_k = √σ_k V_k}).
   *
   * @param sigma the singular values of {@code R(W)}, descending (as many as its smaller side)
   * @param a {@code a[k]}: {@code A_k [i1, o1]} row-major
   * @param b {@code b[k]}: {@code B_k [i2, o2]} row-major
   */
  public record Decomposition(double[] sigma, double[][] a, double[][] b) {}

  /** {@code R(W) [i1·o1, i2·o2]} of {@code w [i1·i2, o1·o2]} row-major. */
  public static double[] rearrange(double[] w, int i1, int i2, int o1, int o2) {
    int out = o1 * o2;
    double[] r = new double[w.length];
    int q = i2 * o2;
    for (int a = 0; a < i1; a++) {
      for (int c = 0; c < o1; c++) {
        for (int b = 0; b < i2; b++) {
          for (int d = 0; d < o2; d++) {
            r[(a * o1 + c) * q + b * o2 + d] = w[(a * i2 + b) * out + c * o2 + d];
          }
        }
      }
    }
    return r;
  }

  /** The Kronecker-product SVD of {@code w [i1·i2, o1·o2]} row-major. */
  public static Decomposition decompose(double[] w, int i1, int i2, int o1, int o2) {
    if (w.length != (long) i1 * i2 * o1 * o2) {
      throw new IllegalArgumentException("weight has " + w.length + " values, [" + i1 * i2 + ", " + o1 * o2 + "] needs "
          + (long) i1 * i2 * o1 * o2);
    }
    int p = i1 * o1;
    int q = i2 * o2;
    double[] r = rearrange(w, i1, i2, o1, o2);
    // One-sided Jacobi on the matrix whose columns are the smaller side: M [rows, cols], cols <= rows.
    boolean transposed = p < q;
    int rows = transposed ? q : p;
    int cols = transposed ? p : q;
    double[][] col = new double[cols][rows];
    for (int i = 0; i < p; i++) {
      for (int j = 0; j < q; j++) {
        if (transposed) {
          col[i][j] = r[i * q + j];
        } else {
          col[j][i] = r[i * q + j];
        }
      }
    }
    double[][] v = new double[cols][cols];
    for (int i = 0; i < cols; i++) {
      v[i][i] = 1;
    }
    for (int sweep = 0; sweep < 60; sweep++) {
      boolean rotated = false;
      for (int i = 0; i < cols - 1; i++) {
        for (int j = i + 1; j < cols; j++) {
          double alpha = dot(col[i], col[i]);
          double beta = dot(col[j], col[j]);
          double gamma = dot(col[i], col[j]);
          if (gamma == 0 || Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta)) {
            continue;
          }
          rotated = true;
          double zeta = (beta - alpha) / (2 * gamma);
          double t = Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
          if (zeta == 0) {
            t = 1;
          }
          double c = 1 / Math.sqrt(1 + t * t);
          double s = c * t;
          rotate(col[i], col[j], c, s);
          rotate(v[i], v[j], c, s);
        }
      }
      if (!rotated) {
        break;
      }
    }
    double[] norms = new double[cols];
    for (int i = 0; i < cols; i++) {
      norms[i] = Math.sqrt(dot(col[i], col[i]));
    }
    Integer[] order = IntStream.range(0, cols).boxed().sorted(Comparator.comparingDouble((Integer i) -> -norms[i])
        .thenComparingInt(i -> i)).toArray(Integer[]::new);
    double[] sigma = new double[cols];
    double[][] a = new double[cols][];
    double[][] b = new double[cols][];
    for (int k = 0; k < cols; k++) {
      int i = order[k];
      sigma[k] = norms[i];
      double root = Math.sqrt(norms[i]);
      // column i of M·V is σ·(left vector); V's column i is the right vector (v[i] holds it as a row).
      double[] left = new double[rows];
      double[] right = new double[cols];
      for (int e = 0; e < rows; e++) {
        left[e] = norms[i] == 0 ? 0 : col[i][e] / norms[i] * root;
      }
      for (int e = 0; e < cols; e++) {
        right[e] = v[i][e] * root;
      }
      a[k] = transposed ? right : left;
      b[k] = transposed ? left : right;
    }
    return new Decomposition(sigma, a, b);
  }

  /** The rule choosing how many terms to keep: by an energy threshold or at the spectrum's elbow. */
  public enum Rule {
    /** The smallest K with {@code Σ_{k≤K} σ_k² ≥ τ·Σ σ_k²}. */
    ENERGY,
    /**
     * The elbow of the spectrum: the knee is the point {@code (k, σ_k)} farthest from the chord
     * joining the first and the last non-zero singular value (the "kneedle" point), and K is the
     * number of terms before it (at least 1): for a spectrum that drops and then flattens, the
     * terms above the drop.
     */
    ELBOW,
    /** The fewer of the two: {@code min(}{@link #ENERGY}{@code , }{@link #ELBOW}{@code )}. */
    BOTH
  }

  /**
   * The number of terms {@code rule} keeps of the descending spectrum {@code sigma} (only its
   * non-zero values count), at most {@code max}; 0 when every singular value is 0.
   */
  public static int terms(double[] sigma, Rule rule, double energy, int max) {
    int n = 0;
    while (n < sigma.length && sigma[n] > 0) {
      n++;
    }
    if (n == 0) {
      return 0;
    }
    int k = switch (rule) {
      case ENERGY -> energyTerms(sigma, n, energy);
      case ELBOW -> elbowTerms(sigma, n);
      case BOTH -> Math.min(energyTerms(sigma, n, energy), elbowTerms(sigma, n));
    };
    return Math.min(k, max);
  }

  /** The smallest K with {@code Σ_{k≤K} σ_k² ≥ energy·Σ σ_k²} over the first n (non-zero) values. */
  private static int energyTerms(double[] sigma, int n, double energy) {
    double total = 0;
    for (int i = 0; i < n; i++) {
      total += sigma[i] * sigma[i];
    }
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += sigma[i] * sigma[i];
      if (sum >= energy * total * (1 - 1e-12)) {
        return i + 1;
      }
    }
    return n;
  }

  /** The number of terms before the knee of the first n (non-zero) values, at least 1. */
  private static int elbowTerms(double[] sigma, int n) {
    int k = 1;
    if (n > 2) {
      double dx = n - 1;
      double dy = sigma[n - 1] - sigma[0];
      double length = Math.hypot(dx, dy);
      double best = -1;
      for (int i = 0; i < n; i++) {
        double distance = Math.abs(dy * i - dx * (sigma[i] - sigma[0])) / length;
        if (distance > best + 1e-15) {
          best = distance;
          k = Math.max(1, i);
        }
      }
    }
    return k;
  }

  private static double dot(double[] x, double[] y) {
    double s = 0;
    for (int i = 0; i < x.length; i++) {
      s += x[i] * y[i];
    }
    return s;
  }

  private static void rotate(double[] x, double[] y, double c, double s) {
    for (int e = 0; e < x.length; e++) {
      double xi = x[e];
      double yi = y[e];
      x[e] = c * xi - s * yi;
      y[e] = s * xi + c * yi;
    }
  }

}
