package dev.graft.dsl.continual;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.Random;

/**
 * A representation descriptor of SEMA: a linear autoencoder of the features one task's data gives,
 * with the mean μ and standard deviation σ of its reconstruction error. Data is new to the
 * descriptor when the mean z-score {@code |e(x) − μ| / σ} of its errors is high (the reference
 * code's {@code AdapterModule.get_z_score_deviation}, which takes the magnitude).
 *
 * <p>The autoencoder is the reference's {@code sema_components.AE}: a {@code Linear(d, k)} encoder
 * and a {@code Linear(k, d)} decoder with biases and no activation, {@code u = E·x + b}, {@code x̂ =
 * Dᵀ·u + c}. The error is the mean squared residual {@code e(x) = |x − x̂|² / d} (the reference's
 * per-example {@code F.mse_loss}). Two fits ({@link Fit}): {@link Fit#SGD}, the reference's (its
 * {@code _train_new} phase {@code rd}), and {@link Fit#CLOSED_FORM}, the same model's optimum (the
 * top-k principal directions Q: {@code E = D = Qᵀ}, {@code b = −Qᵀm}, {@code c = m}).
 *
 * @param encoder E, {@code encoder[j]} the j-th unit's input weights (length d), k of them
 * @param encoderBias b, length k
 * @param decoder D, {@code decoder[j]} the j-th unit's output direction (length d), k of them
 * @param decoderBias c, length d
 * @param errorMean μ
 * @param errorStd σ (divided by n − 1, as the reference's {@code torch.var}), at least {@link #MIN_STD}
 */
public record Descriptor(double[][] encoder, double[] encoderBias, double[][] decoder, double[] decoderBias,
    double errorMean, double errorStd) {
  /** The smallest σ kept, so that features reconstructed exactly do not divide by zero. */
  public static final double MIN_STD = 1e-12;
  private static final int ITERATIONS = 200;

  /** How a descriptor's autoencoder is fitted. */
  public enum Fit {
    /**
     * Stochastic gradient descent on the reconstruction loss with a {@link Schedule} (the
     * reference's); μ and σ over the last {@link Schedule#records()} per-example losses seen in training
     * (the reference's {@code Records}).
     */
    SGD,
    /**
     * The optimum in closed form (subspace iteration for the top {@code min(k, d, n − 1)} principal
     * directions from a seeded start); μ and σ over every fitting example with the final model.
     */
    CLOSED_FORM
  }

  /**
   * The SGD schedule of a descriptor: {@code epochs} passes over the features in seeded shuffled
   * batches of {@code batchSize}, PyTorch's SGD (momentum, weight decay added to the gradient, on
   * every weight and bias), the learning rate annealed by a cosine per epoch ({@code
   * CosineAnnealingLR} with {@code T_max} = epochs), the last {@code records} per-example losses
   * (each computed in the forward pass before its batch's step) giving μ and σ.
   */
  public record Schedule(int epochs, double learningRate, double momentum, double weightDecay, int batchSize,
      int records) {
    /**
     * The reference's: {@code rd_epoch} 20, {@code rd_lr} 0.01, momentum 0.9, weight decay 5e-4,
     * {@code buffer_size} 500; batches of 32.
     */
    public static final Schedule REFERENCE = new Schedule(20, 0.01, 0.9, 5e-4, 32, 500);

    public Schedule {
      String bad = epochs < 1 ? "epochs must be at least 1, got " + epochs
          : !(learningRate > 0) || Double.isInfinite(learningRate) ? "learning rate must be positive and finite, got " + learningRate
          : !(momentum >= 0 && momentum < 1) ? "momentum must be in [0, 1), got " + momentum
          : !(weightDecay >= 0) || Double.isInfinite(weightDecay) ? "weight decay must be non-negative and finite, got " + weightDecay
          : batchSize < 1 ? "batch size must be at least 1, got " + batchSize
          : records < 2 ? "records must be at least 2 (σ needs two losses), got " + records
          : null;
      if (bad != null) {
        throw new GraftException(RuntimeErrorCode.DESCRIPTOR_OPTIONS, "SEMA descriptor schedule: " + bad);
      }
    }
  }

  public Descriptor {
    int k = encoder.length;
    int d = decoderBias.length;
    if (encoderBias.length != k || decoder.length != k) {
      throw new IllegalArgumentException("descriptor of " + k + " encoder units has " + encoderBias.length
          + " encoder biases and " + decoder.length + " decoder units");
    }
    encoder = copy(encoder, d, "encoder");
    decoder = copy(decoder, d, "decoder");
    encoderBias = encoderBias.clone();
    decoderBias = decoderBias.clone();
  }

  private static double[][] copy(double[][] m, int d, String what) {
    double[][] out = new double[m.length][];
    for (int j = 0; j < m.length; j++) {
      if (m[j].length != d) {
        throw new IllegalArgumentException(what + " unit " + j + " has " + m[j].length + " weights, expected d = " + d);
      }
      out[j] = m[j].clone();
    }
    return out;
  }

  /** The units k: {@code min(rank, d)} (a wider linear autoencoder adds nothing). */
  public static int units(int rank, int d) {
    return Math.min(rank, d);
  }

  /**
   * Fits a descriptor to {@code features} ({@code [n][d]}, at least 2 rows): of {@code min(rank, d)}
   * units by {@link Fit#SGD} with {@code schedule}, or of {@code min(rank, d, n − 1)} in {@link
   * Fit#CLOSED_FORM} (which ignores the schedule); seeded starts and shuffles.
   */
  public static Descriptor fit(float[][] features, int rank, Fit fit, Schedule schedule, long seed) {
    int d = checkFeatures(features, rank);
    return switch (fit) {
      case CLOSED_FORM -> fitClosedForm(features, rank, seed);
      case SGD -> train(features, initial(units(rank, d), d, seed), schedule, seed);
    };
  }

  private static int checkFeatures(float[][] features, int rank) {
    if (features.length < 2) {
      throw new GraftException(RuntimeErrorCode.DESCRIPTOR_OPTIONS,
          "a SEMA descriptor needs at least 2 feature rows, got " + features.length);
    }
    if (rank < 1) {
      throw new GraftException(RuntimeErrorCode.DESCRIPTOR_OPTIONS, "SEMA descriptor rank must be at least 1, got " + rank);
    }
    int d = features[0].length;
    for (float[] row : features) {
      if (row.length != d) {
        throw new IllegalArgumentException("feature rows of different widths: " + d + " and " + row.length);
      }
    }
    return d;
  }

  /**
   * PyTorch's default {@code nn.Linear} start, drawn from {@code seed}: encoder weights and biases
   * uniform in ±1/√d, decoder ones in ±1/√k; μ 0, σ 1 (unscored).
   */
  public static Descriptor initial(int k, int d, long seed) {
    Random random = new Random(seed);
    double be = 1 / Math.sqrt(d);
    double bd = 1 / Math.sqrt(k);
    double[][] e = new double[k][d];
    double[] eb = new double[k];
    double[][] dec = new double[k][d];
    double[] db = new double[d];
    for (double[] row : e) {
      for (int i = 0; i < d; i++) {
        row[i] = (2 * random.nextDouble() - 1) * be;
      }
    }
    for (int j = 0; j < k; j++) {
      eb[j] = (2 * random.nextDouble() - 1) * be;
    }
    for (double[] row : dec) {
      for (int i = 0; i < d; i++) {
        row[i] = (2 * random.nextDouble() - 1) * bd;
      }
    }
    for (int i = 0; i < d; i++) {
      db[i] = (2 * random.nextDouble() - 1) * bd;
    }
    return new Descriptor(e, eb, dec, db, 0, 1);
  }

  /**
   * Trains {@code start}'s autoencoder on {@code features} with {@code schedule} (batches shuffled
   * by {@code seed}; batch loss the mean squared error over the batch and the d features) and scores
   * it from the last {@code records} per-example losses seen in training.
   */
  public static Descriptor train(float[][] features, Descriptor start, Schedule schedule, long seed) {
    int n = features.length;
    int k = start.encoder.length;
    int d = start.decoderBias.length;
    if (n < 2 || features[0].length != d) {
      throw new IllegalArgumentException("training a descriptor of width " + d + " needs at least 2 rows of that"
          + " width, got " + n + (n == 0 ? "" : " of width " + features[0].length));
    }
    double[][] e = copy(start.encoder, d, "encoder");
    double[] eb = start.encoderBias.clone();
    double[][] dec = copy(start.decoder, d, "decoder");
    double[] db = start.decoderBias.clone();
    double[][] me = new double[k][d];
    double[] meb = new double[k];
    double[][] md = new double[k][d];
    double[] mdb = new double[d];
    boolean first = true;
    Deque<Double> records = new ArrayDeque<>();
    Random random = new Random(seed);
    int[] order = new int[n];
    for (int i = 0; i < n; i++) {
      order[i] = i;
    }
    double[] u = new double[k];
    double[] r = new double[d];
    for (int epoch = 0; epoch < schedule.epochs(); epoch++) {
      double lr = schedule.learningRate() * (1 + Math.cos(Math.PI * epoch / schedule.epochs())) / 2;
      for (int i = n - 1; i > 0; i--) {
        int j = random.nextInt(i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
      for (int from = 0; from < n; from += schedule.batchSize()) {
        int to = Math.min(n, from + schedule.batchSize());
        double scale = 2.0 / ((to - from) * (double) d);
        double[][] ge = new double[k][d];
        double[] geb = new double[k];
        double[][] gd = new double[k][d];
        double[] gdb = new double[d];
        for (int b = from; b < to; b++) {
          float[] x = features[order[b]];
          for (int j = 0; j < k; j++) {
            double s = eb[j];
            for (int i = 0; i < d; i++) {
              s += e[j][i] * x[i];
            }
            u[j] = s;
          }
          double loss = 0;
          for (int i = 0; i < d; i++) {
            double s = db[i];
            for (int j = 0; j < k; j++) {
              s += dec[j][i] * u[j];
            }
            r[i] = s - x[i];
            loss += r[i] * r[i];
          }
          records.addLast(loss / d);
          if (records.size() > schedule.records()) {
            records.removeFirst();
          }
          // δx̂ = scale·r; grads of D, c; δu = D·δx̂; grads of E, b
          for (int j = 0; j < k; j++) {
            double s = 0;
            for (int i = 0; i < d; i++) {
              double g = scale * r[i];
              gd[j][i] += g * u[j];
              s += dec[j][i] * g;
            }
            geb[j] += s;
            for (int i = 0; i < d; i++) {
              ge[j][i] += s * x[i];
            }
          }
          for (int i = 0; i < d; i++) {
            gdb[i] += scale * r[i];
          }
        }
        for (int j = 0; j < k; j++) {
          step(e[j], ge[j], me[j], schedule, lr, first);
          step(dec[j], gd[j], md[j], schedule, lr, first);
        }
        step(eb, geb, meb, schedule, lr, first);
        step(db, gdb, mdb, schedule, lr, first);
        first = false;
      }
    }
    double mu = 0;
    for (double v : records) {
      mu += v;
    }
    mu /= records.size();
    double var = 0;
    for (double v : records) {
      var += (v - mu) * (v - mu);
    }
    double sigma = records.size() > 1 ? Math.sqrt(var / (records.size() - 1)) : 0;
    return new Descriptor(e, eb, dec, db, mu, Math.max(MIN_STD, sigma));
  }

  /** PyTorch's SGD: g += λp; v = μv + g (v = g at the first step); p −= lr·v. */
  private static void step(double[] p, double[] g, double[] v, Schedule s, double lr, boolean first) {
    for (int i = 0; i < p.length; i++) {
      double gi = g[i] + s.weightDecay() * p[i];
      v[i] = first ? gi : s.momentum() * v[i] + gi;
      p[i] -= lr * v[i];
    }
  }

  /** The closed-form fit ({@link Fit#CLOSED_FORM}) of {@code min(rank, d, n − 1)} units. */
  public static Descriptor fitClosedForm(float[][] features, int rank, long seed) {
    int d = checkFeatures(features, rank);
    int n = features.length;
    double[] m = new double[d];
    for (float[] row : features) {
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
    double[] b = new double[k];
    for (int j = 0; j < k; j++) {
      for (int i = 0; i < d; i++) {
        b[j] -= q[j][i] * m[i];
      }
    }
    Descriptor unscored = new Descriptor(q, b, q, m, 0, 1);
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
    return new Descriptor(q, b, q, m, mu, Math.max(MIN_STD, Math.sqrt(var / (n - 1))));
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
    int d = decoderBias.length;
    int k = encoder.length;
    double[] out = new double[features.length];
    double[] u = new double[k];
    for (int r = 0; r < features.length; r++) {
      float[] x = features[r];
      if (x.length != d) {
        throw new IllegalArgumentException("feature row " + r + " has " + x.length
            + " entries, the descriptor was fitted to " + d);
      }
      for (int j = 0; j < k; j++) {
        double s = encoderBias[j];
        for (int i = 0; i < d; i++) {
          s += encoder[j][i] * x[i];
        }
        u[j] = s;
      }
      double sum = 0;
      for (int i = 0; i < d; i++) {
        double s = decoderBias[i];
        for (int j = 0; j < k; j++) {
          s += decoder[j][i] * u[j];
        }
        double res = x[i] - s;
        sum += res * res;
      }
      out[r] = sum / d;
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
