package dev.graft.runtime.feed;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * The update masks the training step is fed (sparse fine-tuning): for each parameter whose
 * manifest {@code update_mask} is an input of the training graph, a bool tensor of the
 * parameter's shape, true where the step may change the parameter. Every mask is all true at
 * first (dense training).
 */
public final class UpdateMasks {
  private final Map<String, String> inputByParameter = new LinkedHashMap<>();
  private final Map<String, long[]> shapes = new HashMap<>();
  private final Map<String, boolean[]> masks = new HashMap<>();

  /** The masks of {@code manifest}'s parameters among {@code trainInputs} (empty without a training session). */
  public UpdateMasks(Manifest manifest, Set<String> trainInputs) {
    for (Parameter p : manifest.getParametersList()) {
      if (!p.getUpdateMask().isEmpty() && trainInputs.contains(p.getUpdateMask())) {
        inputByParameter.put(p.getName(), p.getUpdateMask());
        long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
        shapes.put(p.getName(), shape);
        boolean[] all = new boolean[Math.toIntExact(Arrays.stream(shape).reduce(1, Math::multiplyExact))];
        Arrays.fill(all, true);
        masks.put(p.getName(), all);
      }
    }
  }

  /** The parameters whose training step takes a mask, in manifest order. */
  public Set<String> parameters() {
    return Collections.unmodifiableSet(inputByParameter.keySet());
  }

  /**
   * Sets parameter {@code name}'s mask (row-major, the parameter's element count).
   *
   * @throws GraftException (GRAFT-R007) for a parameter without a fed mask or a mask of another size
   */
  public void set(String name, boolean[] mask) {
    boolean[] current = masks.get(name);
    if (current == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "parameter '" + name + "' takes no update mask; those that do: "
          + inputByParameter.keySet());
    }
    if (mask.length != current.length) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "update mask of '" + name + "' needs " + current.length
          + " entries (shape " + Arrays.toString(shapes.get(name)) + "), got " + mask.length);
    }
    masks.put(name, mask.clone());
  }

  /** A copy of parameter {@code name}'s mask. */
  public boolean[] get(String name) {
    boolean[] m = masks.get(name);
    if (m == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "parameter '" + name + "' takes no update mask; those that do: "
          + inputByParameter.keySet());
    }
    return m.clone();
  }

  /** Every mask all true again (dense training). */
  public void reset() {
    masks.values().forEach(m -> Arrays.fill(m, true));
  }

  /** A bool tensor per mask input (the caller closes them). */
  public Map<String, OnnxTensor> tensors(OrtEnvironment env) throws OrtException {
    Map<String, OnnxTensor> out = new HashMap<>();
    for (Map.Entry<String, String> e : inputByParameter.entrySet()) {
      boolean[] m = masks.get(e.getKey());
      ByteBuffer bytes = ByteBuffer.allocateDirect(m.length);
      for (boolean b : m) {
        bytes.put((byte) (b ? 1 : 0));
      }
      bytes.flip();
      out.put(e.getValue(), OnnxTensor.createTensor(env, bytes, shapes.get(e.getKey()), ai.onnxruntime.OnnxJavaType.BOOL));
    }
    return out;
  }
}
