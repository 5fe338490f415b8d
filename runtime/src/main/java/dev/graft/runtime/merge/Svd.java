package dev.graft.runtime.merge;

import java.util.Arrays;

/**
 * The thin singular value decomposition {@code M = U·diag(s)·Vᵀ} of a row-major {@code [rows, cols]}
 * matrix, in float64 by one-sided Jacobi (Hestenes): the columns of the taller orientation are
 * rotated pairwise until every pair is orthogonal to working precision, which keeps small singular
 * values accurate (unlike the eigenvalues of a Gram matrix). {@code k = min(rows, cols)} triplets,
 * singular values decreasing; the left vector of a zero singular value is zero.
 *
 * @param u {@code [rows, k]} row-major
 * @param s {@code [k]}, decreasing, nonnegative
 * @param v {@code [cols, k]} row-major
 */
public record Svd(int rows, int cols, double[] u, double[] s, double[] v) {
  private static final int MAX_SWEEPS = 80;
  private static final double EPS = 1e-15;

  /** The thin SVD of row-major {@code m} {@code [rows, cols]}. */
  public static Svd of(double[] m, int rows, int cols) {
    if (rows < cols) {
      Svd t = of(transpose(m, rows, cols), cols, rows);
      return new Svd(rows, cols, t.v, t.s, t.u);
    }
    int n = cols;
    // Columns of m (rows ≥ cols) and of V, each contiguous.
    double[][] g = new double[n][rows];
    double[][] vc = new double[n][n];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < n; j++) {
        g[j][i] = m[i * cols + j];
      }
    }
    for (int j = 0; j < n; j++) {
      vc[j][j] = 1;
    }
    for (int sweep = 0; sweep < MAX_SWEEPS; sweep++) {
      boolean rotated = false;
      for (int p = 0; p < n - 1; p++) {
        for (int q = p + 1; q < n; q++) {
          double[] gp = g[p];
          double[] gq = g[q];
          double alpha = 0;
          double beta = 0;
          double gamma = 0;
          for (int i = 0; i < rows; i++) {
            alpha += gp[i] * gp[i];
            beta += gq[i] * gq[i];
            gamma += gp[i] * gq[i];
          }
          if (gamma == 0 || Math.abs(gamma) <= EPS * Math.sqrt(alpha * beta)) {
            continue;
          }
          rotated = true;
          double zeta = (beta - alpha) / (2 * gamma);
          double t = Math.signum(zeta == 0 ? 1 : zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
          double c = 1 / Math.sqrt(1 + t * t);
          double sn = c * t;
          rotate(gp, gq, c, sn);
          rotate(vc[p], vc[q], c, sn);
        }
      }
      if (!rotated) {
        break;
      }
    }
    double[] s = new double[n];
    for (int j = 0; j < n; j++) {
      double sum = 0;
      for (double x : g[j]) {
        sum += x * x;
      }
      s[j] = Math.sqrt(sum);
    }
    Integer[] order = new Integer[n];
    for (int j = 0; j < n; j++) {
      order[j] = j;
    }
    Arrays.sort(order, (x, y) -> Double.compare(s[y], s[x]));
    double[] u = new double[rows * n];
    double[] v = new double[n * n];
    double[] sorted = new double[n];
    for (int k = 0; k < n; k++) {
      int j = order[k];
      sorted[k] = s[j];
      for (int i = 0; i < rows; i++) {
        u[i * n + k] = s[j] == 0 ? 0 : g[j][i] / s[j];
      }
      for (int i = 0; i < n; i++) {
        v[i * n + k] = vc[j][i];
      }
    }
    return new Svd(rows, cols, u, sorted, v);
  }

  /** The number of triplets, {@code min(rows, cols)}. */
  int k() {
    return s.length;
  }

  private static void rotate(double[] x, double[] y, double c, double s) {
    for (int i = 0; i < x.length; i++) {
      double a = x[i];
      double b = y[i];
      x[i] = c * a - s * b;
      y[i] = s * a + c * b;
    }
  }

  static double[] transpose(double[] m, int rows, int cols) {
    double[] t = new double[m.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        t[j * rows + i] = m[i * cols + j];
      }
    }
    return t;
  }
}
