package dev.graft.runtime.merge;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * {@code cat}: the inputs' factors concatenated along the rank, {@code A = [w_1·A_1 | w_2·A_2 | …]},
 * {@code B = [B_1; B_2; …]}, so {@code A·B = Σ w_i·A_i·B_i} exactly, of rank {@code Σ r_i}. A dense
 * input joins as {@code (ΔW, I)} (or {@code (I, ΔW)} when {@code in < out}), rank {@code min(in, out)}.
 */
final class CatMerge implements MergeMethod {
  @Override
  public String id() {
    return "cat";
  }

  @Override
  public String description() {
    return "factors concatenated along the rank: A·B = Σ w_i·A_i·B_i exactly, rank Σ r_i";
  }

  @Override
  public boolean exact() {
    return true;
  }

  @Override
  public Set<String> options() {
    return Set.of();
  }

  @Override
  public SiteDelta merge(String site, List<@Nullable SiteDelta> deltas, double[] weights, MergeOptions options) {
    return concatenate(site, deltas, weights);
  }

  /** {@code Σ weights[i]·ΔW_i} (and of the Δb) as concatenated factors. */
  static SiteDelta concatenate(String site, List<@Nullable SiteDelta> deltas, double[] weights) {
    SiteDelta first = deltas.stream().filter(d -> d != null).findFirst().orElseThrow();
    int in = first.in();
    int out = first.out();
    List<double[]> as = new ArrayList<>();
    List<double[]> bs = new ArrayList<>();
    List<Integer> ranks = new ArrayList<>();
    double[] bias = new double[out];
    for (int i = 0; i < deltas.size(); i++) {
      SiteDelta d = deltas.get(i);
      if (d == null) {
        continue;
      }
      double[][] f = factors(d);
      as.add(f[0]);
      bs.add(f[1]);
      ranks.add(f[0].length / in);
      double[] db = d.biasView();
      for (int j = 0; j < out; j++) {
        bias[j] += weights[i] * db[j];
      }
    }
    int rank = ranks.stream().mapToInt(Integer::intValue).sum();
    double[] a = new double[in * rank];
    double[] b = new double[rank * out];
    int at = 0;
    int input = 0;
    for (int i = 0; i < deltas.size(); i++) {
      if (deltas.get(i) == null) {
        continue;
      }
      int r = ranks.get(input);
      double[] ai = as.get(input);
      double w = weights[i];
      for (int row = 0; row < in; row++) {
        for (int k = 0; k < r; k++) {
          a[row * rank + at + k] = w * ai[row * r + k];
        }
      }
      System.arraycopy(bs.get(input), 0, b, at * out, r * out);
      at += r;
      input++;
    }
    return SiteDelta.factored(site, in, out, rank, a, b, bias);
  }

  /** A factor pair of {@code d}: its own, or for a dense update {@code (ΔW, I)} / {@code (I, ΔW)}. */
  private static double[][] factors(SiteDelta d) {
    if (d.isFactored()) {
      return new double[][] {d.aView(), d.bView()};
    }
    int in = d.in();
    int out = d.out();
    if (out <= in) {
      double[] eye = new double[out * out];
      for (int j = 0; j < out; j++) {
        eye[j * out + j] = 1;
      }
      return new double[][] {d.weightView(), eye};
    }
    double[] eye = new double[in * in];
    for (int j = 0; j < in; j++) {
      eye[j * in + j] = 1;
    }
    return new double[][] {eye, d.weightView()};
  }
}
