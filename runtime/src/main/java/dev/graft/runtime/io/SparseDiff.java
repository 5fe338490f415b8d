package dev.graft.runtime.io;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A sparse difference (LT-SFT's sparse fine-tuning, Ansell et al., ACL 2022): for each parameter,
 * its shape and the row-major indices (strictly increasing) and values of the entries that differ
 * from the start. Differences compose by addition ({@link #plus}) and are applied by adding them
 * into a model's parameters ({@link #applyTo}); a "language" and a "task" difference applied in
 * turn equal their sum applied once.
 *
 * <p>Saved as safetensors, three tensors per parameter: {@code <name>.shape} (I64), {@code
 * <name>.indices} (I64 [n]) and {@code <name>.values} (F32 [n]); {@link #read} checks every one
 * (the header and sizes are bounded by {@link Safetensors#read}).
 *
 * @param entries the differences by parameter name, sorted
 */
public record SparseDiff(Map<String, Entry> entries) {
  private static final String SHAPE = ".shape";
  private static final String INDICES = ".indices";
  private static final String VALUES = ".values";

  /**
   * One parameter's difference.
   *
   * @param shape the parameter's shape
   * @param indices row-major indices of the differing entries, strictly increasing
   * @param values their differences
   */
  public record Entry(long[] shape, long[] indices, float[] values) {
    /** Its number of entries. */
    public int size() {
      return indices.length;
    }
  }

  public SparseDiff {
    entries = Collections.unmodifiableMap(new TreeMap<>(entries));
  }

  /** The total number of stored entries. */
  public long size() {
    return entries.values().stream().mapToLong(Entry::size).sum();
  }

  /** The entries of {@code values} where {@code mask} is true (row-major). */
  public static Entry entry(long[] shape, float[] values, boolean[] mask) {
    List<Integer> kept = new ArrayList<>();
    for (int i = 0; i < mask.length; i++) {
      if (mask[i]) {
        kept.add(i);
      }
    }
    long[] indices = new long[kept.size()];
    float[] v = new float[kept.size()];
    for (int j = 0; j < indices.length; j++) {
      indices[j] = kept.get(j);
      v[j] = values[kept.get(j)];
    }
    return new Entry(shape.clone(), indices, v);
  }

  /**
   * The sum of this difference and {@code other}: their indices' union, values added where both
   * have an entry.
   *
   * @throws GraftException (GRAFT-R330) when both name a parameter with different shapes
   */
  public SparseDiff plus(SparseDiff other) {
    Map<String, Entry> out = new LinkedHashMap<>(entries);
    for (Map.Entry<String, Entry> e : other.entries.entrySet()) {
      Entry mine = out.get(e.getKey());
      if (mine == null) {
        out.put(e.getKey(), e.getValue());
        continue;
      }
      Entry theirs = e.getValue();
      if (!Arrays.equals(mine.shape(), theirs.shape())) {
        throw new GraftException(RuntimeErrorCode.SPARSE_DIFF_SHAPE, "cannot add sparse differences of '" + e.getKey()
            + "': shape " + Arrays.toString(mine.shape()) + " and shape " + Arrays.toString(theirs.shape()));
      }
      TreeMap<Long, Float> sum = new TreeMap<>();
      for (int i = 0; i < mine.size(); i++) {
        sum.merge(mine.indices()[i], mine.values()[i], Float::sum);
      }
      for (int i = 0; i < theirs.size(); i++) {
        sum.merge(theirs.indices()[i], theirs.values()[i], Float::sum);
      }
      long[] indices = sum.keySet().stream().mapToLong(Long::longValue).toArray();
      float[] values = new float[indices.length];
      int j = 0;
      for (float v : sum.values()) {
        values[j++] = v;
      }
      out.put(e.getKey(), new Entry(mine.shape(), indices, values));
    }
    return new SparseDiff(out);
  }

  /**
   * Adds every entry into {@code model}'s parameter of the same name. Checks every parameter
   * before changing any, so a refused difference changes nothing.
   *
   * @throws GraftException (GRAFT-R330) for a parameter the model lacks or has in another shape
   */
  public void applyTo(AdapterModel model) {
    for (Map.Entry<String, Entry> e : entries.entrySet()) {
      long[] shape;
      try {
        shape = model.getParameterShape(e.getKey());
      } catch (GraftException missing) {
        throw new GraftException(RuntimeErrorCode.SPARSE_DIFF_SHAPE, "the sparse difference names parameter '"
            + e.getKey() + "', which the model lacks", missing);
      }
      if (!Arrays.equals(shape, e.getValue().shape())) {
        throw new GraftException(RuntimeErrorCode.SPARSE_DIFF_SHAPE, "the sparse difference of '" + e.getKey()
            + "' has shape " + Arrays.toString(e.getValue().shape()) + ", the model's parameter has shape "
            + Arrays.toString(shape));
      }
    }
    for (Map.Entry<String, Entry> e : entries.entrySet()) {
      float[] v = model.getParameter(e.getKey());
      Entry d = e.getValue();
      for (int i = 0; i < d.size(); i++) {
        v[(int) d.indices()[i]] += d.values()[i];
      }
      model.setParameter(e.getKey(), v);
    }
  }

  /** Writes the difference as safetensors, atomically. */
  public void write(Path file) {
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    for (Map.Entry<String, Entry> e : entries.entrySet()) {
      Entry d = e.getValue();
      tensors.put(e.getKey() + SHAPE, TensorData.ofLongs(new long[] {d.shape().length}, d.shape()));
      tensors.put(e.getKey() + INDICES, TensorData.ofLongs(new long[] {d.size()}, d.indices()));
      tensors.put(e.getKey() + VALUES, TensorData.ofFloats(new long[] {d.size()}, d.values()));
    }
    Safetensors.write(file, tensors, Map.of("format", "graft.sparse_diff"));
  }

  /**
   * Reads a difference {@link #write} wrote, checking each parameter's three tensors.
   *
   * @throws GraftException (GRAFT-R331) for a malformed difference, or as {@link Safetensors#read}
   */
  public static SparseDiff read(Path file) {
    Safetensors.Contents c = Safetensors.read(file);
    Map<String, Entry> out = new LinkedHashMap<>();
    for (String key : c.tensors().keySet()) {
      if (!key.endsWith(VALUES) && !key.endsWith(INDICES) && !key.endsWith(SHAPE)) {
        throw malformed(file, "tensor '" + key + "' is none of <name>.shape, .indices, .values");
      }
      if (!key.endsWith(VALUES)) {
        continue;
      }
      String name = key.substring(0, key.length() - VALUES.length());
      TensorData shapeT = c.tensors().get(name + SHAPE);
      TensorData indicesT = c.tensors().get(name + INDICES);
      if (shapeT == null || indicesT == null) {
        throw malformed(file, "parameter '" + name + "' has values but no " + (shapeT == null ? "shape" : "indices"));
      }
      long[] shape = longs(file, name + SHAPE, shapeT);
      long size = 1;
      for (long d : shape) {
        if (d <= 0) {
          throw malformed(file, "parameter '" + name + "' has shape " + Arrays.toString(shape) + ": dims must be positive");
        }
        try {
          size = Math.multiplyExact(size, d);
        } catch (ArithmeticException overflow) {
          throw malformed(file, "parameter '" + name + "' has shape " + Arrays.toString(shape) + ": too many elements");
        }
      }
      long[] indices = longs(file, name + INDICES, indicesT);
      TensorData valuesT = c.tensors().get(key);
      if (valuesT.dtype() != DType.F32) {
        throw malformed(file, key + " is " + valuesT.dtype() + ", expected F32");
      }
      float[] values = valuesT.toFloats();
      if (values.length != indices.length) {
        throw malformed(file, "parameter '" + name + "' has " + indices.length + " indices and " + values.length + " values");
      }
      for (int i = 0; i < indices.length; i++) {
        if (indices[i] < 0 || indices[i] >= size || (i > 0 && indices[i] <= indices[i - 1])) {
          throw malformed(file, "parameter '" + name + "' index " + indices[i] + " at " + i
              + " is outside 0.." + (size - 1) + " or not above the one before");
        }
        if (!Float.isFinite(values[i])) {
          throw malformed(file, "parameter '" + name + "' value " + values[i] + " at " + i + " is not finite");
        }
      }
      out.put(name, new Entry(shape, indices, values));
    }
    for (String key : c.tensors().keySet()) {
      String name = key.substring(0, key.lastIndexOf('.'));
      if (!out.containsKey(name)) {
        throw malformed(file, "parameter '" + name + "' has no values");
      }
    }
    return new SparseDiff(out);
  }

  private static long[] longs(Path file, String key, TensorData t) {
    if (t.dtype() != DType.I64 || t.shape().length != 1) {
      throw malformed(file, key + " is " + t.dtype() + " " + Arrays.toString(t.shape()) + ", expected a 1-D I64");
    }
    return t.toLongs();
  }

  private static GraftException malformed(Path file, String what) {
    return new GraftException(RuntimeErrorCode.SPARSE_DIFF_FILE, "sparse difference " + file + ": " + what);
  }
}
