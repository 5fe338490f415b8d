package dev.graft.runtime.merge;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * The trimming methods, on each ΔW and Δb entry by entry: each input trimmed to its top {@code
 * density} fraction by magnitude, then {@code ties} (TIES-merging, Yadav et al. 2023): each entry's
 * sign elected as that of the weighted sum of the trimmed inputs and the disjoint mean {@code Σ
 * w_i·τ_i / Σ |w_i|} over the inputs that agree with it, times {@code lambda}; or {@code
 * magnitude_prune}: {@code λ·Σ w_i·τ_i}.
 */
final class TrimMerge implements MergeMethod {
  private final boolean ties;

  TrimMerge(boolean ties) {
    this.ties = ties;
  }

  @Override
  public String id() {
    return ties ? "ties" : "magnitude_prune";
  }

  @Override
  public String description() {
    return ties ? "trim each input to its top-density entries by magnitude, elect a sign per entry, disjoint mean (×λ)"
        : "trim each input to its top-density entries by magnitude, then λ·Σ w_i·τ_i";
  }

  @Override
  public boolean exact() {
    return true;
  }

  @Override
  public Set<String> options() {
    return Set.of("density", "lambda");
  }

  @Override
  public SiteDelta merge(String site, List<@Nullable SiteDelta> deltas, double[] weights, MergeOptions options) {
    return Elementwise.each(site, deltas, weights, (tensors, w, n, tensor) -> {
      List<double @Nullable []> trimmed = new ArrayList<>();
      for (double[] t : tensors) {
        trimmed.add(t == null ? null : Elementwise.trim(t, options.density()));
      }
      return ties ? Elementwise.electAndMean(trimmed, w, n, options.lambda())
          : Elementwise.weightedSum(trimmed, w, n, options.lambda());
    });
  }
}
