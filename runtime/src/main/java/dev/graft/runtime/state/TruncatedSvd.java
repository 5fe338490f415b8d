package dev.graft.runtime.state;

/**
 * The leading singular triplets of a matrix, deterministic and in plain Java: the symmetric
 * eigendecomposition of the Gram matrix of the smaller side (Householder tridiagonalization and
 * the implicit QL method, as in EISPACK's tred2/tql2), then the other side's vectors from the
 * matrix. Singular values come out in decreasing order; a singular vector's sign is fixed so its
 * largest-magnitude entry is positive.
 *
 * <p>Squaring into the Gram matrix costs accuracy only for singular values far below the largest
 * (relative error about {@code ε·(σ_max/σ)²}); PiSSA uses the leading ones. A {@code 384 × 1536}
 * weight takes well under a second.
 *
 * @param u the left singular vectors {@code [rows, rank]}, row-major
 * @param s the singular values {@code [rank]}, decreasing
 * @param v the right singular vectors {@code [cols, rank]}, row-major
 */
record TruncatedSvd(int rows, int cols, int rank, double[] u, double[] s, double[] v) {
  /** The leading {@code rank} singular triplets of the row-major {@code [rows, cols]} matrix {@code a}. */
  static TruncatedSvd of(float[] a, int rows, int cols, int rank) {
    if (a.length != rows * cols || rank < 1 || rank > Math.min(rows, cols)) {
      throw new IllegalArgumentException(
          "rank " + rank + " of a [" + rows + ", " + cols + "] matrix with " + a.length + " values");
    }
    boolean wide = rows <= cols;
    int n = wide ? rows : cols;
    int m = wide ? cols : rows;
    // Gram matrix of the small side: a·aᵀ [rows, rows] when wide, else aᵀ·a [cols, cols].
    double[][] gram = new double[n][n];
    double[][] small = new double[n][m];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        if (wide) {
          small[i][j] = a[i * cols + j];
        } else {
          small[j][i] = a[i * cols + j];
        }
      }
    }
    for (int i = 0; i < n; i++) {
      for (int j = 0; j <= i; j++) {
        double sum = 0;
        double[] x = small[i];
        double[] y = small[j];
        for (int k = 0; k < m; k++) {
          sum += x[k] * y[k];
        }
        gram[i][j] = sum;
        gram[j][i] = sum;
      }
    }
    double[] d = new double[n];
    double[] e = new double[n];
    tridiagonalize(gram, d, e);
    diagonalize(gram, d, e);
    // Eigenvalues ascend in d; take the largest rank of them.
    double[] near = new double[n * rank];
    double[] far = new double[m * rank];
    double[] sv = new double[rank];
    double largest = Math.sqrt(Math.max(d[n - 1], 0));
    for (int c = 0; c < rank; c++) {
      int col = n - 1 - c;
      double sigma = Math.sqrt(Math.max(d[col], 0));
      int argmax = 0;
      for (int i = 0; i < n; i++) {
        if (Math.abs(gram[i][col]) > Math.abs(gram[argmax][col])) {
          argmax = i;
        }
      }
      double sign = gram[argmax][col] < 0 ? -1 : 1;
      for (int i = 0; i < n; i++) {
        near[i * rank + c] = sign * gram[i][col];
      }
      sv[c] = sigma;
      // The other side: small-sideᵀ · vector / σ; zero for a singular value lost in rounding.
      if (sigma > 1e-12 * largest && sigma > 0) {
        for (int k = 0; k < m; k++) {
          double sum = 0;
          for (int i = 0; i < n; i++) {
            sum += small[i][k] * near[i * rank + c];
          }
          far[k * rank + c] = sum / sigma;
        }
      }
    }
    return wide ? new TruncatedSvd(rows, cols, rank, near, sv, far) : new TruncatedSvd(rows, cols, rank, far, sv, near);
  }

  /**
   * Householder reduction of the symmetric {@code v} to tridiagonal form: on return {@code d}
   * holds the diagonal, {@code e} the subdiagonal ({@code e[0] = 0}) and {@code v} the orthogonal
   * transformation.
   */
  private static void tridiagonalize(double[][] v, double[] d, double[] e) {
    int n = d.length;
    System.arraycopy(v[n - 1], 0, d, 0, n);
    for (int i = n - 1; i > 0; i--) {
      double scale = 0;
      double h = 0;
      for (int k = 0; k < i; k++) {
        scale += Math.abs(d[k]);
      }
      if (scale == 0) {
        e[i] = d[i - 1];
        for (int j = 0; j < i; j++) {
          d[j] = v[i - 1][j];
          v[i][j] = 0;
          v[j][i] = 0;
        }
      } else {
        for (int k = 0; k < i; k++) {
          d[k] /= scale;
          h += d[k] * d[k];
        }
        double f = d[i - 1];
        double g = Math.sqrt(h);
        if (f > 0) {
          g = -g;
        }
        e[i] = scale * g;
        h -= f * g;
        d[i - 1] = f - g;
        for (int j = 0; j < i; j++) {
          e[j] = 0;
        }
        for (int j = 0; j < i; j++) {
          f = d[j];
          v[j][i] = f;
          g = e[j] + v[j][j] * f;
          for (int k = j + 1; k <= i - 1; k++) {
            g += v[k][j] * d[k];
            e[k] += v[k][j] * f;
          }
          e[j] = g;
        }
        f = 0;
        for (int j = 0; j < i; j++) {
          e[j] /= h;
          f += e[j] * d[j];
        }
        double hh = f / (h + h);
        for (int j = 0; j < i; j++) {
          e[j] -= hh * d[j];
        }
        for (int j = 0; j < i; j++) {
          f = d[j];
          g = e[j];
          for (int k = j; k <= i - 1; k++) {
            v[k][j] -= f * e[k] + g * d[k];
          }
          d[j] = v[i - 1][j];
          v[i][j] = 0;
        }
      }
      d[i] = h;
    }
    for (int i = 0; i < n - 1; i++) {
      v[n - 1][i] = v[i][i];
      v[i][i] = 1;
      double h = d[i + 1];
      if (h != 0) {
        for (int k = 0; k <= i; k++) {
          d[k] = v[k][i + 1] / h;
        }
        for (int j = 0; j <= i; j++) {
          double g = 0;
          for (int k = 0; k <= i; k++) {
            g += v[k][i + 1] * v[k][j];
          }
          for (int k = 0; k <= i; k++) {
            v[k][j] -= g * d[k];
          }
        }
      }
      for (int k = 0; k <= i; k++) {
        v[k][i + 1] = 0;
      }
    }
    for (int j = 0; j < n; j++) {
      d[j] = v[n - 1][j];
      v[n - 1][j] = 0;
    }
    v[n - 1][n - 1] = 1;
    e[0] = 0;
  }

  /**
   * Implicit QL iterations on the tridiagonal {@code d}, {@code e}: on return {@code d} holds the
   * eigenvalues in ascending order and the columns of {@code v} the eigenvectors.
   */
  private static void diagonalize(double[][] v, double[] d, double[] e) {
    int n = d.length;
    // The rotations combine two columns of v: work on its transpose, whose rows are contiguous.
    double[][] z = new double[n][n];
    for (int i = 0; i < n; i++) {
      for (int k = 0; k < n; k++) {
        z[k][i] = v[i][k];
      }
    }
    for (int i = 1; i < n; i++) {
      e[i - 1] = e[i];
    }
    e[n - 1] = 0;
    double f = 0;
    double tst1 = 0;
    double eps = Math.ulp(1.0);
    for (int l = 0; l < n; l++) {
      tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
      int m = l;
      while (m < n && Math.abs(e[m]) > eps * tst1) {
        m++;
      }
      if (m > l) {
        int iterations = 0;
        do {
          if (++iterations > 100) {
            throw new ArithmeticException("the QL iteration did not converge at eigenvalue " + l);
          }
          double g = d[l];
          double p = (d[l + 1] - g) / (2 * e[l]);
          double r = Math.hypot(p, 1);
          if (p < 0) {
            r = -r;
          }
          d[l] = e[l] / (p + r);
          d[l + 1] = e[l] * (p + r);
          double dl1 = d[l + 1];
          double h = g - d[l];
          for (int i = l + 2; i < n; i++) {
            d[i] -= h;
          }
          f += h;
          p = d[m];
          double c = 1;
          double c2 = c;
          double c3 = c;
          double el1 = e[l + 1];
          double s = 0;
          double s2 = 0;
          for (int i = m - 1; i >= l; i--) {
            c3 = c2;
            c2 = c;
            s2 = s;
            g = c * e[i];
            h = c * p;
            r = Math.hypot(p, e[i]);
            e[i + 1] = s * r;
            s = e[i] / r;
            c = p / r;
            p = c * d[i] - s * g;
            d[i + 1] = h + s * (c * g + s * d[i]);
            double[] zi = z[i];
            double[] zi1 = z[i + 1];
            for (int k = 0; k < n; k++) {
              h = zi1[k];
              zi1[k] = s * zi[k] + c * h;
              zi[k] = c * zi[k] - s * h;
            }
          }
          p = -s * s2 * c3 * el1 * e[l] / dl1;
          e[l] = s * p;
          d[l] = c * p;
        } while (Math.abs(e[l]) > eps * tst1);
      }
      d[l] += f;
      e[l] = 0;
    }
    // Selection sort, ascending, moving eigenvector columns along.
    for (int i = 0; i < n - 1; i++) {
      int k = i;
      double p = d[i];
      for (int j = i + 1; j < n; j++) {
        if (d[j] < p) {
          k = j;
          p = d[j];
        }
      }
      if (k != i) {
        d[k] = d[i];
        d[i] = p;
        double[] t = z[i];
        z[i] = z[k];
        z[k] = t;
      }
    }
    for (int i = 0; i < n; i++) {
      for (int k = 0; k < n; k++) {
        v[i][k] = z[k][i];
      }
    }
  }
}
