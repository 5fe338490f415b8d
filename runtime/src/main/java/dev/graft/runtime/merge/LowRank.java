package dev.graft.runtime.merge;

/** The rank-r re-factorization of a site's update by its SVD. */
final class LowRank {
  private LowRank() {}

  /** The re-factored update and the Frobenius norm of what it dropped. */
  record Factors(SiteDelta delta, double discarded) {}

  static Factors refactor(SiteDelta d, int rank) {
    int in = d.in();
    int out = d.out();
    double[] u;
    double[] s;
    double[] v;
    int k;
    if (d.isFactored() && d.rank() < Math.min(in, out)) {
      // ΔW = A·B = Qa·(Ra·Rbᵀ)·Qbᵀ: the SVD of the small core, carried back by the Q's.
      int r = d.rank();
      double[][] qa = qr(d.aView(), in, r);
      double[][] qb = qr(Svd.transpose(d.bView(), r, out), out, r);
      double[] core = new double[r * r];
      for (int i = 0; i < r; i++) {
        for (int j = 0; j < r; j++) {
          double sum = 0;
          for (int t = 0; t < r; t++) {
            sum += qa[1][i * r + t] * qb[1][j * r + t];
          }
          core[i * r + j] = sum;
        }
      }
      Svd c = Svd.of(core, r, r);
      k = r;
      u = times(qa[0], in, r, c.u(), r);
      v = times(qb[0], out, r, c.v(), r);
      s = c.s();
    } else {
      Svd full = Svd.of(d.weightView(), in, out);
      k = full.k();
      u = full.u();
      s = full.s();
      v = full.v();
    }
    int keep = Math.min(rank, Math.min(in, out));
    double lost = 0;
    for (int j = keep; j < k; j++) {
      lost += s[j] * s[j];
    }
    double[] a = new double[in * keep];
    double[] b = new double[keep * out];
    for (int j = 0; j < Math.min(keep, k); j++) {
      double root = Math.sqrt(s[j]);
      for (int i = 0; i < in; i++) {
        a[i * keep + j] = u[i * k + j] * root;
      }
      for (int i = 0; i < out; i++) {
        b[j * out + i] = v[i * k + j] * root;
      }
    }
    return new Factors(SiteDelta.factored(d.site(), in, out, keep, a, b, d.biasView()), Math.sqrt(lost));
  }

  /**
   * The thin QR factorization of row-major {@code m [rows, cols]} (rows ≥ cols) by modified
   * Gram–Schmidt applied twice: {@code {Q [rows, cols], R [cols, cols]}}, R upper triangular; a
   * column dependent on the earlier ones gets a zero column in Q.
   */
  static double[][] qr(double[] m, int rows, int cols) {
    double[][] q = new double[cols][rows];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        q[j][i] = m[i * cols + j];
      }
    }
    double[] r = new double[cols * cols];
    for (int j = 0; j < cols; j++) {
      double before = norm(q[j]);
      for (int pass = 0; pass < 2; pass++) {
        for (int p = 0; p < j; p++) {
          double dot = 0;
          for (int i = 0; i < rows; i++) {
            dot += q[p][i] * q[j][i];
          }
          r[p * cols + j] += dot;
          for (int i = 0; i < rows; i++) {
            q[j][i] -= dot * q[p][i];
          }
        }
      }
      double n = norm(q[j]);
      if (n <= 1e-14 * Math.max(before, Double.MIN_NORMAL) || n == 0) {
        java.util.Arrays.fill(q[j], 0);
        continue;
      }
      r[j * cols + j] = n;
      for (int i = 0; i < rows; i++) {
        q[j][i] /= n;
      }
    }
    double[] qm = new double[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        qm[i * cols + j] = q[j][i];
      }
    }
    return new double[][] {qm, r};
  }

  private static double norm(double[] x) {
    double s = 0;
    for (double v : x) {
      s += v * v;
    }
    return Math.sqrt(s);
  }

  /** {@code x [rows, inner] · y [inner, cols]}, row-major. */
  static double[] times(double[] x, int rows, int inner, double[] y, int cols) {
    double[] out = new double[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int t = 0; t < inner; t++) {
        double a = x[i * inner + t];
        if (a == 0) {
          continue;
        }
        for (int j = 0; j < cols; j++) {
          out[i * cols + j] += a * y[t * cols + j];
        }
      }
    }
    return out;
  }
}
