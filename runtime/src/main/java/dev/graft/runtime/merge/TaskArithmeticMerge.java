package dev.graft.runtime.merge;

import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/** {@code task_arithmetic}: the scaled weighted sum {@code λ·Σ w_i·ΔW_i} (task vectors added), exact. */
final class TaskArithmeticMerge implements MergeMethod {
  @Override
  public String id() {
    return "task_arithmetic";
  }

  @Override
  public String description() {
    return "task vectors added: λ·Σ w_i·ΔW_i";
  }

  @Override
  public boolean exact() {
    return true;
  }

  @Override
  public Set<String> options() {
    return Set.of("lambda");
  }

  @Override
  public SiteDelta merge(String site, List<@Nullable SiteDelta> deltas, double[] weights, MergeOptions options) {
    return Elementwise.each(site, deltas, weights,
        (t, w, n, tensor) -> Elementwise.weightedSum(t, w, n, options.lambda()));
  }
}
