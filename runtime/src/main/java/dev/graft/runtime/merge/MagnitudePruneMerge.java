package dev.graft.runtime.merge;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/** {@code magnitude_prune}: each input trimmed to its top {@code density} entries by magnitude, then {@code λ·Σ w_i·τ_i}. */
final class MagnitudePruneMerge implements MergeMethod {
  @Override
  public String id() {
    return "magnitude_prune";
  }

  @Override
  public String description() {
    return "trim each input to its top-density entries by magnitude, then λ·Σ w_i·τ_i";
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
      return Elementwise.weightedSum(trimmed, w, n, options.lambda());
    });
  }
}
