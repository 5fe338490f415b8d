package dev.graft.runtime.merge;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.jspecify.annotations.Nullable;

/** What the entry-by-entry methods share: weighted sums, magnitude trimming, seeded drops, sign election. */
final class Elementwise {
  private Elementwise() {}

  /** One tensor of each input (ΔW or Δb), null where the input leaves the site alone. */
  interface Combine {
    double[] apply(List<double @Nullable []> tensors, double[] weights, int length, String tensor);
  }

  /** Applies {@code combine} to the inputs' ΔW and, separately, to their Δb. */
  static SiteDelta each(String site, List<@Nullable SiteDelta> deltas, double[] weights, Combine combine) {
    SiteDelta first = deltas.stream().filter(d -> d != null).findFirst().orElseThrow();
    int in = first.in();
    int out = first.out();
    List<double @Nullable []> w = deltas.stream().map(d -> d == null ? null : d.weightView()).toList();
    List<double @Nullable []> b = deltas.stream().map(d -> d == null ? null : d.biasView()).toList();
    return SiteDelta.dense(site, in, out, combine.apply(w, weights, in * out, "weight"),
        combine.apply(b, weights, out, "bias"));
  }

  /**
   * {@code Σ weights[i]·ΔW_i} (and of the Δb): the factors concatenated when every input present
   * is factored (exact, rank {@code Σ r_i}), else dense.
   */
  static SiteDelta sum(String site, List<@Nullable SiteDelta> deltas, double[] weights) {
    if (deltas.stream().allMatch(d -> d == null || d.isFactored())) {
      return CatMerge.concatenate(site, deltas, weights);
    }
    return each(site, deltas, weights, (t, w, n, tensor) -> weightedSum(t, w, n, 1));
  }

  /** {@code scale · Σ weights[i]·tensors[i]}. */
  static double[] weightedSum(List<double @Nullable []> tensors, double[] weights, int length, double scale) {
    double[] out = new double[length];
    for (int i = 0; i < tensors.size(); i++) {
      double[] t = tensors.get(i);
      if (t == null) {
        continue;
      }
      double w = weights[i] * scale;
      for (int j = 0; j < length; j++) {
        out[j] += w * t[j];
      }
    }
    return out;
  }

  /**
   * {@code t} with all but its {@code ceil(density·n)} largest-magnitude entries set to zero; among
   * equal magnitudes the lower index is kept.
   */
  static double[] trim(double[] t, double density) {
    int keep = (int) Math.min(t.length, Math.ceil(density * t.length - 1e-9));
    if (keep >= t.length) {
      return t.clone();
    }
    Integer[] order = new Integer[t.length];
    for (int i = 0; i < t.length; i++) {
      order[i] = i;
    }
    Arrays.sort(order, (x, y) -> {
      int c = Double.compare(Math.abs(t[y]), Math.abs(t[x]));
      return c != 0 ? c : Integer.compare(x, y);
    });
    double[] out = new double[t.length];
    for (int k = 0; k < keep; k++) {
      out[order[k]] = t[order[k]];
    }
    return out;
  }

  /**
   * DARE: each entry dropped with probability {@code p} (a draw {@code u < p} of the input's own
   * stream, one draw per entry in row-major order), the kept ones multiplied by {@code 1/(1−p)}.
   */
  static double[] drop(double[] t, double p, SplittableRandom random) {
    double[] out = new double[t.length];
    double keep = 1.0 / (1.0 - p);
    for (int j = 0; j < t.length; j++) {
      if (random.nextDouble() >= p) {
        out[j] = t[j] * keep;
      }
    }
    return out;
  }

  /**
   * The random stream of input {@code input}'s tensor {@code tensor} at {@code site}: a function of
   * the seed and those names only, so a merge is reproducible whatever else it holds.
   */
  static SplittableRandom stream(long seed, String site, int input, String tensor) {
    long h = seed;
    for (String s : List.of(site, tensor)) {
      for (int i = 0; i < s.length(); i++) {
        h = (h ^ s.charAt(i)) * 0x100000001B3L;
      }
      h = Long.rotateLeft(h, 29) * 0x9E3779B97F4A7C15L;
    }
    h ^= (input + 1L) * 0xBF58476D1CE4E5B9L;
    return new SplittableRandom(h);
  }

  /**
   * TIES' sign election and disjoint mean over weighted tensors {@code τ_i = w_i·t_i}: per entry
   * the elected sign is that of {@code Σ τ_i}; the result is {@code Σ τ_i / Σ w_i} over the inputs
   * whose entry is nonzero and of the elected sign (0 where none is), times {@code lambda}.
   */
  static double[] electAndMean(List<double @Nullable []> tensors, double[] weights, int length, double lambda) {
    double[] out = new double[length];
    for (int j = 0; j < length; j++) {
      double mass = 0;
      for (int i = 0; i < tensors.size(); i++) {
        double[] t = tensors.get(i);
        if (t != null) {
          mass += weights[i] * t[j];
        }
      }
      if (mass == 0) {
        continue;
      }
      double sum = 0;
      double norm = 0;
      for (int i = 0; i < tensors.size(); i++) {
        double[] t = tensors.get(i);
        if (t == null || t[j] == 0) {
          continue;
        }
        double tau = weights[i] * t[j];
        if (Math.signum(tau) == Math.signum(mass)) {
          sum += tau;
          norm += Math.abs(weights[i]);
        }
      }
      out[j] = norm == 0 ? 0 : lambda * sum / norm;
    }
    return out;
  }
}
