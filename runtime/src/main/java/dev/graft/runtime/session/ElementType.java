package dev.graft.runtime.session;

import ai.onnxruntime.OnnxJavaType;
import org.jspecify.annotations.Nullable;

/** The ONNX tensor element types the runtime can move between files, protobuf and ONNX Runtime. */
public enum ElementType {
  FLOAT(1, 4, OnnxJavaType.FLOAT),
  UINT8(2, 1, OnnxJavaType.UINT8),
  INT8(3, 1, OnnxJavaType.INT8),
  INT16(5, 2, OnnxJavaType.INT16),
  INT32(6, 4, OnnxJavaType.INT32),
  INT64(7, 8, OnnxJavaType.INT64),
  BOOL(9, 1, OnnxJavaType.BOOL),
  FLOAT16(10, 2, OnnxJavaType.FLOAT16),
  DOUBLE(11, 8, OnnxJavaType.DOUBLE),
  BFLOAT16(16, 2, OnnxJavaType.BFLOAT16);

  public final int onnx;
  public final int bytes;
  public final OnnxJavaType javaType;

  ElementType(int onnx, int bytes, OnnxJavaType javaType) {
    this.onnx = onnx;
    this.bytes = bytes;
    this.javaType = javaType;
  }

  public static @Nullable ElementType ofOnnx(int dataType) {
    for (ElementType t : values()) {
      if (t.onnx == dataType) {
        return t;
      }
    }
    return null;
  }

  public static String describe(int dataType) {
    ElementType t = ofOnnx(dataType);
    return t == null ? "ONNX type " + dataType : t.name().toLowerCase(java.util.Locale.ROOT);
  }
}
