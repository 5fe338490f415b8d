package dev.graft.runtime.data;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * A tokenized example: one unpadded int sequence per host input name (all the same length)
 * and what it is trained towards: a class label (classification), float targets (regression,
 * multi-label) or nothing (causal LM: the tokens are the labels).
 *
 * @param features host input name → token values, e.g. {@code input_ids}, {@code attention_mask}
 * @param label class index (0 when the task has float targets or none)
 * @param targets float targets of regression and multi-label tasks; null for others
 */
public record Example(Map<String, long[]> features, long label, float @Nullable [] targets) {
  /** A classified example. */
  public Example(Map<String, long[]> features, long label) {
    this(features, label, null);
  }

  /** An example with float targets (regression values, or multi-label 0/1 values). */
  public static Example withTargets(Map<String, long[]> features, float... targets) {
    return new Example(features, 0, targets.clone());
  }

  /** An example of a causal LM: its tokens are its labels. */
  public static Example unlabelled(Map<String, long[]> features) {
    return new Example(features, 0, null);
  }

  public Example {
    features = Collections.unmodifiableMap(new LinkedHashMap<>(features));
    int len = -1;
    for (Map.Entry<String, long[]> e : features.entrySet()) {
      if (len >= 0 && e.getValue().length != len) {
        throw new dev.graft.runtime.TensorMismatchException(
            e.getKey(), len + " values (as the other features)", e.getValue().length + " values");
      }
      len = e.getValue().length;
    }
  }

  /** The sequence length. */
  public int length() {
    return features.isEmpty() ? 0 : features.values().iterator().next().length;
  }
}
