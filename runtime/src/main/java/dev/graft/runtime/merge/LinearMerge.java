package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * {@code linear}: the weighted mean {@code Σ w_i·ΔW_i / Σ w_i} (and of the Δb), exact; factored
 * when every input is (the factors concatenated, as {@code cat}), so it keeps a low rank.
 */
final class LinearMerge implements MergeMethod {
  @Override
  public String id() {
    return "linear";
  }

  @Override
  public String description() {
    return "weighted mean of the updates, Σ w_i·ΔW_i / Σ w_i";
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
    double total = 0;
    for (double w : weights) {
      total += w;
    }
    if (total == 0) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "linear: expected weights whose sum is not 0 (the mean"
          + " divides by it), given a sum of 0");
    }
    double[] scaled = weights.clone();
    for (int i = 0; i < scaled.length; i++) {
      scaled[i] /= total;
    }
    return Elementwise.sum(site, deltas, scaled);
  }
}
