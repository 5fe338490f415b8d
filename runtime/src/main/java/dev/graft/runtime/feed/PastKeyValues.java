package dev.graft.runtime.feed;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.session.DirectBuffers;
import dev.graft.runtime.session.ElementType;
import dev.graft.runtime.session.Sessions;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.KeyValueCache;
import dev.graft.spec.manifest.Manifest;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The key/value cache inputs of a decoder host ({@code Manifest.key_values}) when there is no past
 * yet: tensors whose past-sequence axis has length 0, which a prediction, a training step and the
 * first step of generation feed.
 */
public final class PastKeyValues {
  private PastKeyValues() {}

  /** Empty past tensors for a batch, one per cache entry (none for a host without a cache); the caller closes them. */
  public static Map<String, OnnxTensor> empty(OrtEnvironment env, Manifest manifest, int batch) {
    Map<String, OnnxTensor> out = new LinkedHashMap<>();
    try {
      for (KeyValueCache c : manifest.getKeyValuesList()) {
        long[] shape = shape(c, batch, 0);
        if (c.getElemType() != ElementType.FLOAT.onnx) {
          throw new TensorMismatchException(
              c.getPastInput(), "a float32 key/value cache", ElementType.describe(c.getElemType()), "unsupported");
        }
        out.put(c.getPastInput(), OnnxTensor.createTensor(env, DirectBuffers.floats(0), shape));
      }
      return out;
    } catch (OrtException e) {
      out.values().forEach(OnnxTensor::close);
      throw Sessions.failure("cannot create empty key/value cache tensors", e);
    } catch (RuntimeException e) {
      out.values().forEach(OnnxTensor::close);
      throw e;
    }
  }

  /** A cache entry's shape for a batch and a past length: batch on axis 0, the past on the sequence axis, fixed sizes elsewhere. */
  public static long[] shape(KeyValueCache c, int batch, long past) {
    if (c.getSequenceAxis() < 1 || c.getSequenceAxis() >= c.getShapeCount()) {
      throw new FormatException("manifest", "key/value cache '" + c.getPastInput() + "': sequence_axis must be in [1, "
          + c.getShapeCount() + ") for its rank-" + c.getShapeCount() + " shape, got " + c.getSequenceAxis());
    }
    long[] shape = new long[c.getShapeCount()];
    for (int d = 0; d < shape.length; d++) {
      Dim dim = c.getShape(d);
      if (d == 0) {
        shape[d] = batch;
      } else if (d == c.getSequenceAxis()) {
        shape[d] = past;
      } else if (dim.hasSize() && dim.getSize() > 0) {
        shape[d] = dim.getSize();
      } else {
        throw new TensorMismatchException(c.getPastInput(), "a fixed size on axis " + d + " of the cache",
            "symbol " + dim.getSymbol() + " in " + Arrays.toString(c.getShapeList().toArray()));
      }
    }
    return shape;
  }
}
