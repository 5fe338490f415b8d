package dev.graft.runtime.io;

import org.jspecify.annotations.Nullable;

/** Element types of safetensors files that Graft reads and writes (little-endian). */
public enum DType {
  F32(4),
  F64(8),
  /** bfloat16: float32's sign, exponent and top 7 mantissa bits; read as float32 exactly. */
  BF16(2),
  /** IEEE half precision; read as float32 exactly. */
  F16(2),
  I64(8),
  I32(4),
  /** Unsigned bytes: the bit-packed codes of a quantized adapter ({@link QuantizedAdapters}). */
  U8(1);

  private final int size;

  DType(int size) {
    this.size = size;
  }

  /** Bytes per element. */
  public int size() {
    return size;
  }

  /** Whether the type is a floating-point type that {@link TensorData#toFloats} reads. */
  public boolean isFloat() {
    return this == F32 || this == F64 || this == BF16 || this == F16;
  }

  static @Nullable DType parse(String name) {
    for (DType d : values()) {
      if (d.name().equals(name)) {
        return d;
      }
    }
    return null;
  }
}
