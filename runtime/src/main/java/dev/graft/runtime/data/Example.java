package dev.graft.runtime.data;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * An example: its host inputs and what it is trained towards: a class label (classification),
 * float targets (regression, multi-label) or nothing (causal LM: the tokens are the labels). A
 * tokenized example holds one unpadded int sequence per host input name (all the same length),
 * which {@link Batch#of} pads; an example of another kind of host (an image) holds its inputs as
 * tensors without the batch dimension (pixels {@code [3, 224, 224]}), which {@link Batch#of}
 * stacks.
 *
 * @param features host input name → token values, e.g. {@code input_ids}, {@code attention_mask}
 * @param label class index (0 when the task has float targets or none)
 * @param targets float targets of regression and multi-label tasks; null for others
 * @param tensors host input name → the example's values of any type and shape, e.g. {@code
 *     pixel_values} {@code float32[3, 16, 16]}; no name is both a feature and a tensor
 */
public record Example(Map<String, long[]> features, long label, float @Nullable [] targets,
    Map<String, HostTensor> tensors) {
  /** A tokenized example with float targets or none. */
  public Example(Map<String, long[]> features, long label, float @Nullable [] targets) {
    this(features, label, targets, Map.of());
  }

  /** A classified example. */
  public Example(Map<String, long[]> features, long label) {
    this(features, label, null, Map.of());
  }

  /** A classified example whose host inputs are tensors without the batch dimension (an image's pixels). */
  public static Example ofTensors(Map<String, HostTensor> tensors, long label) {
    return new Example(Map.of(), label, null, tensors);
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
    tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
    int len = -1;
    for (Map.Entry<String, long[]> e : features.entrySet()) {
      if (len >= 0 && e.getValue().length != len) {
        throw new dev.graft.runtime.TensorMismatchException(
            e.getKey(), len + " values (as the other features)", e.getValue().length + " values");
      }
      len = e.getValue().length;
      if (tensors.containsKey(e.getKey())) {
        throw new dev.graft.runtime.GraftException(dev.graft.runtime.RuntimeErrorCode.ARGUMENT, "host input '"
            + e.getKey() + "' is both a feature and a tensor of the example; give it once");
      }
    }
  }

  /** The sequence length (0 for an example of tensors alone). */
  public int length() {
    return features.isEmpty() ? 0 : features.values().iterator().next().length;
  }
}
