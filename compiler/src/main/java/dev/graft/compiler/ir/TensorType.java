package dev.graft.compiler.ir;

import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Element type (an ONNX {@code TensorProto.DataType} number) and shape of a value. A null
 * shape means the rank is unknown.
 */
public record TensorType(int elemType, @Nullable List<Dim> shape) {
  public static final int FLOAT = 1;
  public static final int UINT8 = 2;
  public static final int INT8 = 3;
  public static final int INT32 = 6;
  public static final int INT64 = 7;
  public static final int BOOL = 9;
  public static final int FLOAT16 = 10;
  public static final int DOUBLE = 11;
  public static final int BFLOAT16 = 16;

  public TensorType {
    shape = shape == null ? null : List.copyOf(shape);
  }

  public static TensorType of(int elemType, List<Dim> shape) {
    return new TensorType(elemType, shape);
  }

  public static TensorType of(int elemType, long... dims) {
    List<Dim> s = new ArrayList<>();
    for (long d : dims) {
      s.add(Dim.of(d));
    }
    return new TensorType(elemType, s);
  }

  public boolean hasRank() {
    return shape != null;
  }

  public int rank() {
    if (shape == null) {
      throw new IllegalStateException("rank unknown");
    }
    return shape.size();
  }

  public List<Dim> dims() {
    if (shape == null) {
      throw new IllegalStateException("shape unknown");
    }
    return shape;
  }

  public Dim dim(int axis) {
    return dims().get(axis);
  }

  public TensorType withShape(@Nullable List<Dim> newShape) {
    return new TensorType(elemType, newShape);
  }

  public TensorType withElemType(int newElemType) {
    return new TensorType(newElemType, shape);
  }

  public boolean isFloating() {
    return elemType == FLOAT || elemType == DOUBLE || elemType == FLOAT16 || elemType == BFLOAT16;
  }

  /** Number of elements, when every dim is known. */
  public long knownSize() {
    long n = 1;
    for (Dim d : dims()) {
      n *= d.size();
    }
    return n;
  }

  @Override
  public String toString() {
    return elemTypeName(elemType) + (shape == null ? "[?]" : shape.toString());
  }

  public static String elemTypeName(int elemType) {
    return switch (elemType) {
      case FLOAT -> "float32";
      case DOUBLE -> "float64";
      case FLOAT16 -> "float16";
      case BFLOAT16 -> "bfloat16";
      case INT64 -> "int64";
      case INT32 -> "int32";
      case BOOL -> "bool";
      default -> "dtype" + elemType;
    };
  }
}
