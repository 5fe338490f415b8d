package dev.graft.runtime.merge;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * DARE (Yu et al. 2024), on each ΔW and Δb entry by entry: each input's entries dropped with
 * probability {@code dropRate}, the kept ones rescaled by {@code 1/(1−dropRate)}, seeded per input,
 * site and tensor (see {@link Elementwise#stream}); then {@code dare_linear}: {@code λ·Σ w_i·τ_i},
 * or {@code dare_ties}: TIES' sign election and disjoint mean (no trim).
 */
final class DareMerge implements MergeMethod {
  private final boolean ties;

  DareMerge(boolean ties) {
    this.ties = ties;
  }

  @Override
  public String id() {
    return ties ? "dare_ties" : "dare_linear";
  }

  @Override
  public String description() {
    return "drop entries with probability p, rescale by 1/(1−p) (seeded), then "
        + (ties ? "TIES' sign election and disjoint mean (×λ)" : "λ·Σ w_i·τ_i");
  }

  @Override
  public boolean exact() {
    return true;
  }

  @Override
  public Set<String> options() {
    return Set.of("dropRate", "lambda", "seed");
  }

  @Override
  public SiteDelta merge(String site, List<@Nullable SiteDelta> deltas, double[] weights, MergeOptions options) {
    return Elementwise.each(site, deltas, weights, (tensors, w, n, tensor) -> {
      List<double @Nullable []> dropped = new ArrayList<>();
      for (int i = 0; i < tensors.size(); i++) {
        double[] t = tensors.get(i);
        dropped.add(t == null ? null
            : Elementwise.drop(t, options.dropRate(), Elementwise.stream(options.seed(), site, i, tensor)));
      }
      return ties ? Elementwise.electAndMean(dropped, w, n, options.lambda())
          : Elementwise.weightedSum(dropped, w, n, options.lambda());
    });
  }
}
