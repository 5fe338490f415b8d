package dev.graft.runtime.data;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The values of one host input: a shape and its elements row-major, of one element type
 * ({@link Kind}). Immutable: the factories copy what they are given and the accessors return
 * copies. A shape that does not hold the elements is {@code GRAFT-R382}, nested arrays of unequal
 * lengths {@code GRAFT-R002}; reading the elements as another type is {@code GRAFT-R383}. Whether the
 * tensor fits a host input (its element type, rank, sizes, finite values) is checked where it is
 * fed, against the manifest.
 */
public final class HostTensor {
  /** The element types a host input may have, with their ONNX names. */
  public enum Kind {
    FLOAT32("float32", float.class),
    FLOAT64("float64", double.class),
    INT64("int64", long.class),
    INT32("int32", int.class),
    BOOL("bool", boolean.class);

    private final String onnxName;
    private final Class<?> element;

    Kind(String onnxName, Class<?> element) {
      this.onnxName = onnxName;
      this.element = element;
    }

    /** The ONNX name of the element type, e.g. {@code float32}. */
    public String onnxName() {
      return onnxName;
    }

    /** Whether the elements are integers (int64, int32). */
    public boolean isInteger() {
      return this == INT64 || this == INT32;
    }
  }

  private final Kind kind;
  private final long[] shape;
  /** float[], double[], long[], int[] or boolean[] as the kind says; never exposed. */
  private final Object data;

  private HostTensor(Kind kind, long[] shape, Object data) {
    this.kind = kind;
    this.shape = shape.clone();
    long count = 1;
    for (int d = 0; d < shape.length; d++) {
      if (shape[d] < 0) {
        throw new GraftException(RuntimeErrorCode.HOST_TENSOR_SHAPE, "a host tensor's sizes must not be negative, got "
            + Arrays.toString(shape));
      }
      if (shape[d] > 0 && count > Integer.MAX_VALUE / shape[d]) {
        throw new GraftException(RuntimeErrorCode.HOST_TENSOR_SHAPE, "host tensor shape " + Arrays.toString(shape)
            + " holds more than " + Integer.MAX_VALUE + " elements, more than one Java array holds");
      }
      count *= shape[d];
    }
    int length = Array.getLength(data);
    if (count != length) {
      throw new GraftException(RuntimeErrorCode.HOST_TENSOR_SHAPE, "host tensor shape " + Arrays.toString(shape)
          + " holds " + count + " elements, given " + length + " " + kind.onnxName + " values");
    }
    this.data = data;
  }

  /** A float32 tensor of {@code shape} holding {@code values} row-major (copied). */
  public static HostTensor floats(long[] shape, float[] values) {
    return new HostTensor(Kind.FLOAT32, shape, values.clone());
  }

  /** A float64 tensor of {@code shape} holding {@code values} row-major (copied). */
  public static HostTensor doubles(long[] shape, double[] values) {
    return new HostTensor(Kind.FLOAT64, shape, values.clone());
  }

  /** An int64 tensor of {@code shape} holding {@code values} row-major (copied). */
  public static HostTensor longs(long[] shape, long[] values) {
    return new HostTensor(Kind.INT64, shape, values.clone());
  }

  /** An int32 tensor of {@code shape} holding {@code values} row-major (copied). */
  public static HostTensor ints(long[] shape, int[] values) {
    return new HostTensor(Kind.INT32, shape, values.clone());
  }

  /** A bool tensor of {@code shape} holding {@code values} row-major (copied). */
  public static HostTensor booleans(long[] shape, boolean[] values) {
    return new HostTensor(Kind.BOOL, shape, values.clone());
  }

  /** An int64 {@code [batch, sequence]} tensor of token rows (all as long as the first). */
  public static HostTensor of(long[][] rows) {
    return ofArray(rows);
  }

  /** A float32 {@code [batch, channels, height, width]} tensor of images. */
  public static HostTensor of(float[][][][] images) {
    return ofArray(images);
  }

  /**
   * A tensor of a rectangular nested primitive array of any rank ({@code float[][][][]} is a
   * float32 tensor of rank 4): its shape is the arrays' lengths, its kind the innermost element
   * type (float, double, long, int or boolean). Another type is {@code GRAFT-R382}; arrays of one
   * level that differ in length are {@code GRAFT-R002}.
   */
  public static HostTensor ofArray(Object array) {
    return ofArray(array, "");
  }

  /** {@link #ofArray(Object)} of host input {@code name} (empty for none), which its errors name. */
  static HostTensor ofArray(Object array, String name) {
    String where = where(name);
    List<Long> dims = new ArrayList<>();
    Class<?> type = array.getClass();
    for (Object level = array; type.isArray(); type = type.getComponentType()) {
      dims.add((long) Array.getLength(level));
      level = Array.getLength(level) > 0 && type.getComponentType().isArray() ? Array.get(level, 0) : level;
    }
    Class<?> element = type;
    Kind kind = Arrays.stream(Kind.values()).filter(k -> k.element == element).findFirst()
        .orElseThrow(() -> new GraftException(RuntimeErrorCode.HOST_TENSOR_SHAPE, where + "a host tensor is a nested array of"
            + " float, double, long, int or boolean, given " + array.getClass().getSimpleName()));
    long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
    long count = 1;
    for (long d : shape) {
      count = d > 0 && count > Integer.MAX_VALUE / d ? Integer.MAX_VALUE + 1L : count * d;
    }
    if (count > Integer.MAX_VALUE) {
      throw new GraftException(RuntimeErrorCode.HOST_TENSOR_SHAPE, "host tensor shape " + Arrays.toString(shape)
          + " holds more than " + Integer.MAX_VALUE + " elements, more than one Java array holds");
    }
    Object flat = Array.newInstance(element, (int) count);
    flatten(array, shape, 0, flat, new int[] {0}, new ArrayList<>(), name);
    return new HostTensor(kind, shape, flat);
  }

  /**
   * The tensors of {@code parts} (examples of host input {@code name}, all of one type and shape)
   * stacked along a new first dimension: {@code [parts.size(), ...shape]}.
   */
  static HostTensor stack(String name, List<HostTensor> parts) {
    HostTensor first = parts.get(0);
    for (int i = 1; i < parts.size(); i++) {
      HostTensor t = parts.get(i);
      if (t.kind != first.kind || !Arrays.equals(t.shape, first.shape)) {
        throw new TensorMismatchException(name, first.describe() + " (as example 0)", t.describe() + " in example " + i);
      }
    }
    long[] shape = new long[first.shape.length + 1];
    shape[0] = parts.size();
    System.arraycopy(first.shape, 0, shape, 1, first.shape.length);
    int each = first.size();
    Object data = Array.newInstance(first.kind.element, Math.multiplyExact(each, parts.size()));
    for (int i = 0; i < parts.size(); i++) {
      System.arraycopy(parts.get(i).data, 0, data, i * each, each);
    }
    return new HostTensor(first.kind, shape, data);
  }

  private static void flatten(Object level, long[] shape, int depth, Object flat, int[] at, List<Integer> index,
      String name) {
    int length = Array.getLength(level);
    if (length != shape[depth]) {
      throw new TensorMismatchException(name.isEmpty() ? "host tensor" : name,
          "rectangular " + Arrays.toString(shape) + " (pad the batch)", (index.size() == 1 ? "row " + index.get(0)
              : "array " + index) + " has " + length + " values, the first of its level " + shape[depth]);
    }
    if (depth == shape.length - 1) {
      System.arraycopy(level, 0, flat, at[0], length);
      at[0] += length;
      return;
    }
    for (int i = 0; i < length; i++) {
      index.add(i);
      flatten(Array.get(level, i), shape, depth + 1, flat, at, index, name);
      index.remove(index.size() - 1);
    }
  }

  public Kind kind() {
    return kind;
  }

  /** A copy of the shape. */
  public long[] shape() {
    return shape.clone();
  }

  public int rank() {
    return shape.length;
  }

  /** The size of dimension {@code d}. */
  public long dim(int d) {
    return shape[d];
  }

  /** The number of elements. */
  public int size() {
    return Array.getLength(data);
  }

  /** A copy of a float32 tensor's elements, row-major. */
  public float[] floats() {
    return ((float[]) elements(Kind.FLOAT32)).clone();
  }

  /** A copy of a float64 tensor's elements, row-major. */
  public double[] doubles() {
    return ((double[]) elements(Kind.FLOAT64)).clone();
  }

  /** A copy of an int64 tensor's elements, row-major. */
  public long[] longs() {
    return ((long[]) elements(Kind.INT64)).clone();
  }

  /** A copy of an int32 tensor's elements, row-major. */
  public int[] ints() {
    return ((int[]) elements(Kind.INT32)).clone();
  }

  /** A copy of a bool tensor's elements, row-major. */
  public boolean[] booleans() {
    return ((boolean[]) elements(Kind.BOOL)).clone();
  }

  /** Element {@code i} (row-major) of an integer tensor (int64 or int32). */
  public long longAt(int i) {
    requireInteger("an element as an integer");
    return kind == Kind.INT64 ? ((long[]) data)[i] : ((int[]) data)[i];
  }

  /** Element {@code i} (row-major) of a float tensor (float32 or float64), as a double. */
  public double doubleAt(int i) {
    if (kind != Kind.FLOAT32 && kind != Kind.FLOAT64) {
      throw new GraftException(RuntimeErrorCode.HOST_TENSOR_KIND, "reading an element as a float needs a float32 or"
          + " float64 host tensor, given " + describe());
    }
    return kind == Kind.FLOAT32 ? ((float[]) data)[i] : ((double[]) data)[i];
  }

  /** An integer tensor of rank 2 ({@code [batch, sequence]} token rows) as rows, copied. */
  public long[][] rows() {
    return rows("");
  }

  /** {@link #rows()} of host input {@code name}, which its error names. */
  long[][] rows(String name) {
    String where = where(name);
    if (!kind.isInteger() || shape.length != 2) {
      throw new GraftException(RuntimeErrorCode.HOST_TENSOR_KIND, where + "token rows need an int64 or int32 host tensor of"
          + " rank 2 [batch, sequence], given " + describe());
    }
    long[][] out = new long[(int) shape[0]][(int) shape[1]];
    int at = 0;
    for (long[] row : out) {
      for (int c = 0; c < row.length; c++) {
        row[c] = longAt(at++);
      }
    }
    return out;
  }

  /** E.g. {@code float32[2, 3, 16, 16]}. */
  public String describe() {
    StringBuilder sb = new StringBuilder(kind.onnxName).append('[');
    for (int d = 0; d < shape.length; d++) {
      sb.append(d == 0 ? "" : ", ").append(shape[d]);
    }
    return sb.append(']').toString();
  }

  @Override
  public String toString() {
    return "HostTensor " + describe();
  }

  private static String where(String name) {
    return name.isEmpty() ? "" : "host input '" + name + "': ";
  }

  private Object elements(Kind wanted) {
    if (kind != wanted) {
      throw new GraftException(RuntimeErrorCode.HOST_TENSOR_KIND, String.format(Locale.ROOT,
          "reading %s elements needs a host tensor of %s, given %s", wanted.onnxName, wanted.onnxName, describe()));
    }
    return data;
  }

  private void requireInteger(String what) {
    if (!kind.isInteger()) {
      throw new GraftException(RuntimeErrorCode.HOST_TENSOR_KIND, "reading " + what + " needs an int64 or int32 host"
          + " tensor, given " + describe());
    }
  }
}
