package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The registry of merge methods, by id: {@code linear}, {@code task_arithmetic}, {@code cat},
 * {@code ties}, {@code dare_linear}, {@code dare_ties}, {@code magnitude_prune}, and {@code
 * ab_linear} (PEFT's A/B-wise linear combination, approximate). The re-factorization of a merged
 * update to a chosen rank by SVD is {@link MergeResult#toRank}, which applies to any of them.
 */
public final class MergeMethods {
  private static final Map<String, MergeMethod> METHODS = new LinkedHashMap<>();

  static {
    for (MergeMethod m : List.of(new LinearMerge(), new TaskArithmeticMerge(), new CatMerge(), new TrimMerge(true),
        new DareMerge(false), new DareMerge(true), new TrimMerge(false), new AbLinearMerge())) {
      METHODS.put(m.id(), m);
    }
  }

  private MergeMethods() {}

  /** The method {@code id}; an unknown id is {@code GRAFT-R130}, listing the registry's. */
  public static MergeMethod get(String id) {
    MergeMethod m = METHODS.get(id);
    if (m == null) {
      throw new GraftException(RuntimeErrorCode.MERGE_METHOD, "expected a merge method of " + ids() + ", given '"
          + id + "'");
    }
    return m;
  }

  /** Every method's id, in registry order. */
  public static List<String> ids() {
    return new ArrayList<>(METHODS.keySet());
  }

  /** Every method, in registry order. */
  public static List<MergeMethod> all() {
    return new ArrayList<>(METHODS.values());
  }
}
