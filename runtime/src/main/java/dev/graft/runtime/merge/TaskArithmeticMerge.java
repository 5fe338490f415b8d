package dev.graft.runtime.merge;

import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/** {@code task_arithmetic}: the scaled weighted sum {@code λ·Σ w_i·ΔW_i} (task vectors added), exact; factored when every input is. */
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
    double[] scaled = weights.clone();
    for (int i = 0; i < scaled.length; i++) {
      scaled[i] *= options.lambda();
    }
    return Elementwise.sum(site, deltas, scaled);
  }
}
