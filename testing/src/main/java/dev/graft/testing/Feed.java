package dev.graft.testing;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import java.nio.ByteBuffer;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import org.jspecify.annotations.Nullable;

/**
 * A value fed to a graph input by name: int64 ids or labels, real numbers (images, regression
 * targets, scalars), made float32 or float64 as the input declares, or bools (gates).
 */
public record Feed(long @Nullable [] longs, double @Nullable [] reals, boolean @Nullable [] bools, long[] shape) {
  public static Feed longs(long[] values, long... shape) {
    return new Feed(values, null, null, shape);
  }

  public static Feed reals(double[] values, long... shape) {
    return new Feed(null, values, null, shape);
  }

  public static Feed floats(float[] values, long... shape) {
    double[] d = new double[values.length];
    for (int i = 0; i < d.length; i++) {
      d[i] = values[i];
    }
    return reals(d, shape);
  }

  /** A 0-D real. */
  public static Feed scalar(double value) {
    return reals(new double[] {value});
  }

  public static Feed bools(boolean[] values, long... shape) {
    return new Feed(null, null, values, shape);
  }

  /** A 0-D bool. */
  public static Feed bool(boolean value) {
    return bools(new boolean[] {value});
  }

  /** The tensor of this value; reals are made {@code real} (FLOAT or DOUBLE). */
  OnnxTensor tensor(OrtEnvironment env, OnnxJavaType real) throws OrtException {
    if (longs != null) {
      return OnnxTensor.createTensor(env, LongBuffer.wrap(longs), shape);
    }
    if (bools != null) {
      if (shape.length == 0) {
        return OnnxTensor.createTensor(env, bools[0]);
      }
      byte[] raw = new byte[bools.length];
      for (int i = 0; i < raw.length; i++) {
        raw[i] = (byte) (bools[i] ? 1 : 0);
      }
      return OnnxTensor.createTensor(env, ByteBuffer.wrap(raw), shape, OnnxJavaType.BOOL);
    }
    double[] d = reals == null ? new double[0] : reals;
    if (real == OnnxJavaType.DOUBLE) {
      return OnnxTensor.createTensor(env, DoubleBuffer.wrap(d), shape);
    }
    return OnnxTensor.createTensor(env, FloatBuffer.wrap(toFloats(d)), shape);
  }

  static float[] toFloats(double[] d) {
    float[] f = new float[d.length];
    for (int i = 0; i < d.length; i++) {
      f[i] = (float) d[i];
    }
    return f;
  }
}
