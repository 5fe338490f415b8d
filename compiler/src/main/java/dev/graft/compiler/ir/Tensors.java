package dev.graft.compiler.ir;

import com.google.protobuf.ByteString;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/** Making and reading small constant tensors. */
public final class Tensors {
  private Tensors() {}

  /** A scalar (shape []) of the given floating element type. */
  public static TensorProto scalar(String name, int elemType, double value) {
    return floats(name, elemType, List.of(), new double[] {value});
  }

  /** A floating tensor of float32 or float64 elements. */
  public static TensorProto floats(String name, int elemType, List<Long> dims, double[] values) {
    ByteBuffer b;
    if (elemType == TensorType.DOUBLE) {
      b = ByteBuffer.allocate(8 * values.length).order(ByteOrder.LITTLE_ENDIAN);
      for (double v : values) {
        b.putDouble(v);
      }
    } else if (elemType == TensorType.FLOAT) {
      b = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN);
      for (double v : values) {
        b.putFloat((float) v);
      }
    } else {
      throw new IllegalArgumentException(
          "constants of " + TensorType.elemTypeName(elemType) + " are not supported");
    }
    return TensorProto.newBuilder()
        .setName(name)
        .setDataType(elemType)
        .addAllDims(dims)
        .setRawData(ByteString.copyFrom(b.flip()))
        .build();
  }

  /** A 1-D int64 tensor. */
  public static TensorProto longs(String name, List<Long> values) {
    return longs(name, List.of((long) values.size()), values);
  }

  public static TensorProto longs(String name, List<Long> dims, List<Long> values) {
    ByteBuffer b = ByteBuffer.allocate(8 * values.size()).order(ByteOrder.LITTLE_ENDIAN);
    for (long v : values) {
      b.putLong(v);
    }
    return TensorProto.newBuilder()
        .setName(name)
        .setDataType(TensorType.INT64)
        .addAllDims(dims)
        .setRawData(ByteString.copyFrom(b.flip()))
        .build();
  }

  public static long elementCount(TensorProto t) {
    long n = 1;
    for (long d : t.getDimsList()) {
      n *= d;
    }
    return n;
  }

  /** The values of an integer tensor (int64 or int32), or null for other types. */
  public static List<Long> readLongs(TensorProto t) {
    List<Long> out = new ArrayList<>();
    long n = elementCount(t);
    if (t.getDataType() == TensorType.INT64) {
      if (t.hasRawData()) {
        ByteBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
          out.add(b.getLong());
        }
      } else {
        out.addAll(t.getInt64DataList());
      }
    } else if (t.getDataType() == TensorType.INT32) {
      if (t.hasRawData()) {
        ByteBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
          out.add((long) b.getInt());
        }
      } else {
        for (int v : t.getInt32DataList()) {
          out.add((long) v);
        }
      }
    } else {
      throw new IllegalArgumentException("not an integer tensor: " + t.getName());
    }
    return out;
  }

  /** The values of a float32/float64 tensor as doubles. */
  public static double[] readDoubles(TensorProto t) {
    int n = (int) elementCount(t);
    double[] out = new double[n];
    if (t.getDataType() == TensorType.FLOAT) {
      if (t.hasRawData()) {
        ByteBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
          out[i] = b.getFloat();
        }
      } else {
        for (int i = 0; i < n; i++) {
          out[i] = t.getFloatData(i);
        }
      }
    } else if (t.getDataType() == TensorType.DOUBLE) {
      if (t.hasRawData()) {
        ByteBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
          out[i] = b.getDouble();
        }
      } else {
        for (int i = 0; i < n; i++) {
          out[i] = t.getDoubleData(i);
        }
      }
    } else {
      throw new IllegalArgumentException("not a floating tensor: " + t.getName());
    }
    return out;
  }

  public static TensorType typeOf(TensorProto t) {
    List<Dim> dims = new ArrayList<>();
    for (long d : t.getDimsList()) {
      dims.add(Dim.of(d));
    }
    return TensorType.of(t.getDataType(), dims);
  }
}
