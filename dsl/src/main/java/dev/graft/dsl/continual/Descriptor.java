package dev.graft.dsl.continual;

import java.util.Random;

/**
 * A representation descriptor of SEMA: an autoencoder of the features one task's data gives, with
 * the mean μ and standard deviation σ of its reconstruction error over those features. Data is new
 * to the descriptor when the mean z-score {@code |e(x) − μ| / σ} of its errors is high (the
 * reference code's {@code AdapterModule.get_z_score_deviation}, which takes the magnitude).
 *
 * <p>The autoencoder is linear, {@code x̂ = m + Q·Qᵀ·(x − m)} with m the features' mean and Q the
 * {@code [d, k]} top-k principal directions (found by subspace iteration on the covariance from a
 * seeded start): the minimizer of a k-unit linear autoencoder's squared reconstruction error,
 * computed in closed form rather than by gradient descent. The error is the mean squared residual
 * {@code e(x) = |x − x̂|² / d} (the reference's {@code AE.compute_reconstruction_loss}: the mean
 * squared error of the token-mean feature). The reference's AE ({@code sema_components.AE}) is the
 * same linear encoder and decoder with biases, trained by SGD rather than solved.
 *
 * @param mean the features' mean m, length d
 * @param basis Q, {@code basis[j]} the j-th direction (unit length, mutually orthogonal), k of them
 * @param errorMean μ, the mean error over the fitting features
 * @param errorStd σ, their sample standard deviation (divided by n − 1, as the reference's {@code
 *     torch.var}), at least {@link #MIN_STD}
 */
public record Descriptor(double[] mean, double[][] basis, double errorMean, double errorStd) {
  /** The smallest σ kept, so that features reconstructed exactly do not divide by zero. */
  public static final double MIN_STD = 1e-12;
  private static final int ITERATIONS = 200;

  public Descriptor {
    mean = mean.clone();
    basis = basis.clone();
    for (int j = 0; j < basis.length; j++) {
      if (basis[j].length != mean.length) {
        throw new IllegalArgumentException("basis vector " + j + " has " + basis[j].length
            + " entries, expected the mean's " + mean.length);
      }
      basis[j] = basis[j].clone();
    }
  }

  /**
   * Fits a descriptor of rank {@code min(rank, d, n − 1)} to {@code features} ({@code [n][d]}, at
   * least 2 rows) with a start drawn from {@code seed}.
   */
  public static Descriptor fit(float[][] features, int rank, long seed) {
    if (features.length < 2) {
      throw new IllegalArgumentException("a descriptor needs at least 2 feature rows, got " + features.length);
    }
    if (rank < 1) {
      throw new IllegalArgumentException("descriptor rank must be at least 1, got " + rank);
    }
    int n = features.length;
    int d = features[0].length;
    double[] m = new double[d];
    for (float[] row : features) {
      if (row.length != d) {
        throw new IllegalArgumentException("feature rows of different widths: " + d + " and " + row.length);
      }
      for (int i = 0; i < d; i++) {
        m[i] += row[i];
      }
    }
    for (int i = 0; i < d; i++) {
      m[i] /= n;
    }
    double[][] cov = new double[d][d];
    for (float[] row : features) {
      for (int i = 0; i < d; i++) {
        double a = row[i] - m[i];
        for (int j = i; j < d; j++) {
          cov[i][j] += a * (row[j] - m[j]);
        }
      }
    }
    for (int i = 0; i < d; i++) {
      for (int j = i; j < d; j++) {
        cov[i][j] /= n;
        cov[j][i] = cov[i][j];
      }
    }
    int k = Math.min(rank, Math.min(d, n - 1));
    Random random = new Random(seed);
    double[][] q = new double[k][d];
    for (double[] v : q) {
      for (int i = 0; i < d; i++) {
        v[i] = random.nextGaussian();
      }
    }
    orthonormalize(q);
    for (int it = 0; it < ITERATIONS; it++) {
      double[][] next = new double[k][d];
      for (int j = 0; j < k; j++) {
        for (int i = 0; i < d; i++) {
          double s = 0;
          for (int l = 0; l < d; l++) {
            s += cov[i][l] * q[j][l];
          }
          next[j][i] = s;
        }
      }
      orthonormalize(next);
      q = next;
    }
    Descriptor unscored = new Descriptor(m, q, 0, 1);
    double[] e = unscored.errors(features);
    double mu = 0;
    for (double v : e) {
      mu += v;
    }
    mu /= n;
    double var = 0;
    for (double v : e) {
      var += (v - mu) * (v - mu);
    }
    return new Descriptor(m, q, mu, Math.max(MIN_STD, Math.sqrt(var / (n - 1))));
  }

  /** Gram–Schmidt in place; a vector that vanishes against the earlier ones becomes zero. */
  private static void orthonormalize(double[][] q) {
    for (int j = 0; j < q.length; j++) {
      for (int l = 0; l < j; l++) {
        double dot = 0;
        for (int i = 0; i < q[j].length; i++) {
          dot += q[j][i] * q[l][i];
        }
        for (int i = 0; i < q[j].length; i++) {
          q[j][i] -= dot * q[l][i];
        }
      }
      double norm = 0;
      for (double v : q[j]) {
        norm += v * v;
      }
      norm = Math.sqrt(norm);
      for (int i = 0; i < q[j].length; i++) {
        q[j][i] = norm > 1e-12 ? q[j][i] / norm : 0;
      }
    }
  }

  /** The reconstruction error {@code e(x) = |x − x̂|² / d} of each row of {@code features}. */
  public double[] errors(float[][] features) {
    int d = mean.length;
    double[] out = new double[features.length];
    double[] c = new double[d];
    for (int r = 0; r < features.length; r++) {
      if (features[r].length != d) {
        throw new IllegalArgumentException("feature row " + r + " has " + features[r].length
            + " entries, the descriptor was fitted to " + d);
      }
      for (int i = 0; i < d; i++) {
        c[i] = features[r][i] - mean[i];
      }
      double[] residual = c.clone();
      for (double[] v : basis) {
        double dot = 0;
        for (int i = 0; i < d; i++) {
          dot += v[i] * c[i];
        }
        for (int i = 0; i < d; i++) {
          residual[i] -= dot * v[i];
        }
      }
      double s = 0;
      for (double v : residual) {
        s += v * v;
      }
      out[r] = s / d;
    }
    return out;
  }

  /** The z-score {@code |e(x) − μ| / σ} of each row of {@code features}. */
  public double[] zScores(float[][] features) {
    double[] z = errors(features);
    for (int i = 0; i < z.length; i++) {
      z[i] = Math.abs(z[i] - errorMean) / errorStd;
    }
    return z;
  }

  /** The mean z-score {@code |e(x) − μ| / σ} over the rows of {@code features}. */
  public double zScore(float[][] features) {
    double sum = 0;
    for (double z : zScores(features)) {
      sum += z;
    }
    return sum / features.length;
  }
}
