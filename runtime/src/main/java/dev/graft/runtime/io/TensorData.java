package dev.graft.runtime.io;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.TensorMismatchException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor of a safetensors file: element type, shape and its little-endian bytes.
 *
 * @param dtype element type
 * @param shape dimensions (empty for a scalar)
 * @param data little-endian bytes, {@code product(shape) * dtype.size()} of them
 */
public record TensorData(DType dtype, long[] shape, byte[] data) {
  public TensorData {
    Objects.requireNonNull(dtype, "dtype");
    shape = shape.clone();
    long n = elementCount(shape);
    if (n * dtype.size() != data.length) {
      throw new TensorMismatchException(
          "(tensor data)", n * dtype.size() + " bytes for " + dtype + Arrays.toString(shape), data.length + " bytes");
    }
  }

  /** A float32 tensor. */
  public static TensorData ofFloats(long[] shape, float[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(values);
    return new TensorData(DType.F32, shape, b.array());
  }

  /** A float64 tensor. */
  public static TensorData ofDoubles(long[] shape, double[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asDoubleBuffer().put(values);
    return new TensorData(DType.F64, shape, b.array());
  }

  /** An int64 tensor. */
  public static TensorData ofLongs(long[] shape, long[] values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 8).order(ByteOrder.LITTLE_ENDIAN);
    b.asLongBuffer().put(values);
    return new TensorData(DType.I64, shape, b.array());
  }

  /**
   * The values as floats: F32 as is, BF16 and F16 widened (exactly: every value of either is a
   * float32), F64 narrowed; other types are an error.
   */
  public float[] toFloats() {
    ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
    switch (dtype) {
      case F32 -> {
        float[] out = new float[data.length / 4];
        b.asFloatBuffer().get(out);
        return out;
      }
      case F64 -> {
        float[] out = new float[data.length / 8];
        for (int i = 0; i < out.length; i++) {
          out[i] = (float) b.getDouble(i * 8);
        }
        return out;
      }
      case BF16 -> {
        float[] out = new float[data.length / 2];
        for (int i = 0; i < out.length; i++) {
          out[i] = HalfFloats.fromBfloat16(b.getShort(i * 2));
        }
        return out;
      }
      case F16 -> {
        float[] out = new float[data.length / 2];
        for (int i = 0; i < out.length; i++) {
          out[i] = HalfFloats.fromHalf(b.getShort(i * 2));
        }
        return out;
      }
      default -> throw new TensorMismatchException("(tensor data)", "F32, F64, BF16 or F16", dtype.name());
    }
  }

  /**
   * Returns {@code values} (a tensor's values as floats) unless one is NaN or an infinity, which
   * is a {@link FormatException} naming {@code src}, the tensor and the first such element.
   */
  public static float[] requireFinite(String src, String name, float[] values) {
    for (int i = 0; i < values.length; i++) {
      if (!Float.isFinite(values[i])) {
        throw new FormatException(src, "tensor '" + name + "' holds " + values[i] + " at element " + i
            + " (as float32); a file with non-finite values is refused");
      }
    }
    return values;
  }

  /** The values of an F64 tensor. */
  public double[] toDoubles() {
    if (dtype != DType.F64) {
      throw new TensorMismatchException("(tensor data)", "F64", dtype.name());
    }
    double[] out = new double[data.length / 8];
    ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(out);
    return out;
  }

  /** The values of an I64 tensor. */
  public long[] toLongs() {
    if (dtype != DType.I64) {
      throw new TensorMismatchException("(tensor data)", "I64", dtype.name());
    }
    long[] out = new long[data.length / 8];
    ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asLongBuffer().get(out);
    return out;
  }

  @Override
  public long[] shape() {
    return shape.clone();
  }

  static long elementCount(long[] shape) {
    long n = 1;
    for (long d : shape) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in " + Arrays.toString(shape));
      }
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof TensorData t
        && t.dtype == dtype
        && Arrays.equals(t.shape, shape)
        && Arrays.equals(t.data, data);
  }

  @Override
  public int hashCode() {
    return Objects.hash(dtype, Arrays.hashCode(shape), Arrays.hashCode(data));
  }

  @Override
  public String toString() {
    return dtype + Arrays.toString(shape);
  }
}
