package dev.graft.runtime.io;

import org.jspecify.annotations.Nullable;

/** Element types of safetensors files that Graft reads and writes (little-endian). */
public enum DType {
  F32(4),
  F64(8),
  I64(8),
  I32(4);

  private final int size;

  DType(int size) {
    this.size = size;
  }

  /** Bytes per element. */
  public int size() {
    return size;
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
