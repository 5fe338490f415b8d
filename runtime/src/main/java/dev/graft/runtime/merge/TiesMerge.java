package dev.graft.runtime.merge;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * {@code ties} (TIES-merging, Yadav et al. 2023), on each ΔW and Δb entry by entry: trim each input
 * to its top {@code density} fraction by magnitude, elect each entry's sign as that of the weighted
 * sum of the trimmed inputs, and take the disjoint mean {@code Σ w_i·τ_i / Σ |w_i|} over the inputs
 * that agree with it, times {@code lambda}.
 */
final class TiesMerge implements MergeMethod {
  @Override
  public String id() {
    return "ties";
  }

  @Override
  public String description() {
    return "trim each input to its top-density entries by magnitude, elect a sign per entry, disjoint mean (×λ)";
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
      return Elementwise.electAndMean(trimmed, w, n, options.lambda());
    });
  }
}
