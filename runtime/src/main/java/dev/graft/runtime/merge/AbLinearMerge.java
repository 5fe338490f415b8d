package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * {@code ab_linear}: PEFT's {@code add_weighted_adapter(combination_type="linear")}, offered for
 * comparison and labelled approximate: the factors are combined separately, {@code A = Σ s_i·√|w_i|·A_i},
 * {@code B = Σ √|w_i|·B_i} ({@code s_i} the sign of {@code w_i}), so {@code A·B} is {@code Σ w_i·A_i·B_i}
 * plus the cross-terms {@code s_i·√|w_i·w_j|·A_i·B_j}, {@code i ≠ j}. Every input must be factored
 * at one rank; the Δb are summed weighted.
 */
final class AbLinearMerge implements MergeMethod {
  @Override
  public String id() {
    return "ab_linear";
  }

  @Override
  public String description() {
    return "APPROXIMATE (PEFT's A/B-wise linear): A = Σ √w_i·A_i, B = Σ √w_i·B_i, cross-terms included";
  }

  @Override
  public boolean exact() {
    return false;
  }

  @Override
  public Set<String> options() {
    return Set.of();
  }

  @Override
  public SiteDelta merge(String site, List<@Nullable SiteDelta> deltas, double[] weights, MergeOptions options) {
    SiteDelta first = deltas.stream().filter(d -> d != null).findFirst().orElseThrow();
    int in = first.in();
    int out = first.out();
    int rank = -1;
    for (SiteDelta d : deltas) {
      if (d == null) {
        continue;
      }
      if (!d.isFactored() || (rank >= 0 && d.rank() != rank)) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "ab_linear at site " + site
            + ": expected factored inputs of one rank, given " + deltas.stream()
                .map(x -> x == null ? "none" : x.isFactored() ? "rank " + x.rank() : "dense").toList());
      }
      rank = d.rank();
    }
    double[] a = new double[in * rank];
    double[] b = new double[rank * out];
    double[] bias = new double[out];
    for (int i = 0; i < deltas.size(); i++) {
      SiteDelta d = deltas.get(i);
      if (d == null) {
        continue;
      }
      double root = Math.sqrt(Math.abs(weights[i]));
      double sa = Math.signum(weights[i]) * root;
      double[] ai = d.aView();
      double[] bi = d.bView();
      double[] di = d.biasView();
      for (int j = 0; j < a.length; j++) {
        a[j] += sa * ai[j];
      }
      for (int j = 0; j < b.length; j++) {
        b[j] += root * bi[j];
      }
      for (int j = 0; j < out; j++) {
        bias[j] += weights[i] * di[j];
      }
    }
    return SiteDelta.factored(site, in, out, rank, a, b, bias);
  }
}
