package dev.graft.runtime.data;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A tokenized example: one unpadded int sequence per host input name (all the same length)
 * and its class label.
 *
 * @param features host input name → token values, e.g. {@code input_ids}, {@code attention_mask}
 * @param label class index
 */
public record Example(Map<String, long[]> features, long label) {
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
