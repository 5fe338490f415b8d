package dev.graft.runtime.feed;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.data.HostFeed;
import dev.graft.runtime.data.HostTensor;
import dev.graft.runtime.session.DirectBuffers;
import dev.graft.runtime.session.ElementType;
import dev.graft.runtime.session.Sessions;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The host inputs of a batch ({@link HostFeed}: any element type and rank the manifest declares),
 * checked against the manifest and made tensors.
 */
public final class HostInputs {
  private HostInputs() {}

  /** The batch size of host inputs (already checked by {@link #tensors}). */
  public static int batchSize(Map<String, long[][]> hostInputs) {
    return hostInputs.values().iterator().next().length;
  }

  /** {@link #tensors(OrtEnvironment, Manifest, HostFeed)} of integer token rows {@code [batch][sequence]} per name. */
  public static Map<String, OnnxTensor> tensors(OrtEnvironment env, Manifest manifest, Map<String, long[][]> given) {
    return tensors(env, manifest, HostFeed.ofRows(given));
  }

  /**
   * Validates host inputs against the manifest (names, element type, rank, fixed sizes, symbols
   * shared between inputs, floats finite, an attention mask's values being 0 or 1, ids within the
   * table they index, the sequence within the host's positions) and makes tensors over direct
   * buffers; the caller closes them.
   */
  public static Map<String, OnnxTensor> tensors(OrtEnvironment env, Manifest manifest, HostFeed feed) {
    Map<String, HostTensor> given = feed.tensors();
    Set<String> expected = new TreeSet<>();
    for (HostInput in : manifest.getInputsList()) {
      expected.add(in.getName());
    }
    if (!expected.equals(new TreeSet<>(given.keySet()))) {
      Set<String> missing = new TreeSet<>(expected);
      missing.removeAll(given.keySet());
      Set<String> extra = new TreeSet<>(given.keySet());
      extra.removeAll(expected);
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME,
          "host inputs must be exactly " + expected + "; missing " + missing + ", unknown " + extra);
    }
    Map<String, Long> symbols = new HashMap<>();
    Map<String, String> symbolSource = new HashMap<>();
    for (HostInput in : manifest.getInputsList()) {
      HostTensor t = given.get(in.getName());
      checkType(in, t);
      long[] actual = t.shape();
      if (in.getShapeCount() != actual.length) {
        throw new TensorMismatchException(in.getName(), describe(in), "rank " + actual.length + " " + t.describe());
      }
      if (t.size() == 0) {
        throw new TensorMismatchException(in.getName(), describe(in), t.describe(), "empty batch");
      }
      for (int d = 0; d < actual.length; d++) {
        Dim dim = in.getShape(d);
        if (dim.hasSize() && dim.getSize() > 0 && dim.getSize() != actual[d]) {
          throw new TensorMismatchException(in.getName(), describe(in), t.describe());
        }
        if (dim.hasSymbol() && !dim.getSymbol().isEmpty()) {
          Long prior = symbols.putIfAbsent(dim.getSymbol(), actual[d]);
          if (prior != null && prior != actual[d]) {
            throw new TensorMismatchException(
                in.getName(), describe(in) + " with " + dim.getSymbol() + " = " + prior + " (from "
                    + symbolSource.get(dim.getSymbol()) + ")",
                t.describe());
          }
          symbolSource.putIfAbsent(dim.getSymbol(), in.getName());
        }
      }
      if (t.kind() == HostTensor.Kind.FLOAT32 || t.kind() == HostTensor.Kind.FLOAT64) {
        checkFinite(in.getName(), t);
      } else if (t.kind().isInteger()) {
        if (in.getMask()) {
          checkMask(in.getName(), t);
        }
        checkLimits(in, t);
      }
    }
    Map<String, OnnxTensor> out = new LinkedHashMap<>();
    try {
      for (HostInput in : manifest.getInputsList()) {
        out.put(in.getName(), tensor(env, in, given.get(in.getName())));
      }
      return out;
    } catch (OrtException e) {
      out.values().forEach(OnnxTensor::close);
      throw Sessions.failure("cannot create host input tensors", e);
    } catch (RuntimeException e) {
      out.values().forEach(OnnxTensor::close);
      throw e;
    }
  }

  /** The element types that may feed each other: the manifest's exactly, or integer values of either width. */
  private static void checkType(HostInput in, HostTensor t) {
    ElementType want = ElementType.ofOnnx(in.getElemType());
    boolean fits = want != null && switch (want) {
      case FLOAT -> t.kind() == HostTensor.Kind.FLOAT32;
      case DOUBLE -> t.kind() == HostTensor.Kind.FLOAT64;
      case INT64, INT32 -> t.kind().isInteger();
      case BOOL -> t.kind() == HostTensor.Kind.BOOL;
      default -> false;
    };
    if (!fits) {
      boolean fed = want == ElementType.FLOAT || want == ElementType.DOUBLE || want == ElementType.INT64
          || want == ElementType.INT32 || want == ElementType.BOOL;
      throw new GraftException(RuntimeErrorCode.HOST_INPUT_TYPE, "host input '" + in.getName() + "': expected "
          + describe(in) + ", given " + t.describe()
          + (fed ? "" : " (this runtime feeds host inputs of float32, float64, int64, int32 and bool)"));
    }
  }

  private static OnnxTensor tensor(OrtEnvironment env, HostInput in, HostTensor t) throws OrtException {
    long[] shape = t.shape();
    int n = t.size();
    ElementType type = ElementType.ofOnnx(in.getElemType());
    return switch (type) {
      case FLOAT -> OnnxTensor.createTensor(env, DirectBuffers.floats(n).put(t.floats()).clear(), shape);
      case DOUBLE -> {
        DoubleBuffer buf = ByteBuffer.allocateDirect(n * 8).order(ByteOrder.nativeOrder()).asDoubleBuffer();
        yield OnnxTensor.createTensor(env, buf.put(t.doubles()).clear(), shape);
      }
      case INT64 -> {
        LongBuffer buf = DirectBuffers.longs(n);
        for (int i = 0; i < n; i++) {
          buf.put(t.longAt(i));
        }
        yield OnnxTensor.createTensor(env, buf.clear(), shape);
      }
      case INT32 -> {
        IntBuffer buf = DirectBuffers.ints(n);
        for (int i = 0; i < n; i++) {
          long v = t.longAt(i);
          if (v != (int) v) {
            throw new GraftException(RuntimeErrorCode.ARGUMENT, "host input '" + in.getName() + "' is int32: value "
                + v + " at " + index(shape, i) + " does not fit");
          }
          buf.put((int) v);
        }
        yield OnnxTensor.createTensor(env, buf.clear(), shape);
      }
      case BOOL -> {
        ByteBuffer buf = ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder());
        for (boolean b : t.booleans()) {
          buf.put((byte) (b ? 1 : 0));
        }
        yield OnnxTensor.createTensor(env, buf.clear(), shape, OnnxJavaType.BOOL);
      }
      default -> throw new IllegalStateException("checked by checkType: " + type);
    };
  }

  /**
   * The training step's dropout seed for its step {@code value}, as a scalar of the graph's type
   * (a float seed keeps the low 24 bits, which a float holds exactly).
   */
  public static OnnxTensor seed(OrtEnvironment env, String name, ElementType type, long value) throws OrtException {
    return switch (type) {
      case INT64 -> OnnxTensor.createTensor(env, DirectBuffers.longs(1).put(0, value), new long[0]);
      case INT32 -> OnnxTensor.createTensor(env, DirectBuffers.ints(1).put(0, (int) value), new long[0]);
      case FLOAT -> OnnxTensor.createTensor(
          env, DirectBuffers.floats(1).put(0, (float) (value & 0xFFFFFF)), new long[0]);
      default -> throw new TensorMismatchException(name, "int64, int32 or float scalar", type.name());
    };
  }

  /** A float input holds no NaN or infinity: one would turn the loss and every gradient into NaN. */
  private static void checkFinite(String name, HostTensor t) {
    for (int i = 0; i < t.size(); i++) {
      double v = t.doubleAt(i);
      if (!Double.isFinite(v)) {
        throw new GraftException(RuntimeErrorCode.HOST_INPUT_NOT_FINITE, "host input '" + name + "' must be finite,"
            + " got " + v + " at " + index(t.shape(), i));
      }
    }
  }

  /** An attention mask (the manifest marks it) holds only 0 and 1: any other value would scale, not mask. */
  private static void checkMask(String name, HostTensor t) {
    for (int i = 0; i < t.size(); i++) {
      long v = t.longAt(i);
      if (v != 0 && v != 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "host input '" + name + "' is an attention mask: values"
            + " must be 0 or 1, got " + v + " at " + index(t.shape(), i));
      }
    }
  }

  /**
   * The limits the compiler found in the host: values that index a table must be rows of it (ONNX's
   * Gather would wrap a negative one around, or fail in ONNX Runtime with its own message), and no
   * sequence (the second dimension) may be longer than the position table.
   */
  private static void checkLimits(HostInput in, HostTensor t) {
    long seq = t.rank() < 2 ? 0 : t.dim(1);
    if (in.getMaxSequence() > 0 && seq > in.getMaxSequence()) {
      long virtual = in.getVirtualTokens();
      throw new GraftException(RuntimeErrorCode.SEQUENCE_TOO_LONG, "host input '" + in.getName() + "' has sequence"
          + " length " + seq + "; the host's position table holds " + (in.getMaxSequence() + virtual) + " positions"
          + (virtual > 0 ? ", " + virtual + " of them taken by the virtual tokens the graft puts first (prompt tuning)"
              : "")
          + ", so at most " + in.getMaxSequence() + " tokens fit (truncate the batch)");
    }
    long limit = in.getIndexLimit();
    if (limit <= 0) {
      return;
    }
    for (int i = 0; i < t.size(); i++) {
      long v = t.longAt(i);
      if (v < 0 || v >= limit) {
        throw new GraftException(RuntimeErrorCode.INDEX_OUT_OF_RANGE, "host input '" + in.getName() + "' indexes a"
            + " host table of " + limit + " rows: values must be in [0, " + limit + "), got "
            + v + " at " + index(t.shape(), i));
      }
    }
  }

  /** Row-major element {@code flat} of {@code shape} as an index, e.g. {@code [1, 0, 3, 2]}. */
  private static String index(long[] shape, int flat) {
    long[] at = new long[shape.length];
    long rest = flat;
    for (int d = shape.length - 1; d >= 0; d--) {
      at[d] = rest % shape[d];
      rest /= shape[d];
    }
    return Arrays.toString(at);
  }

  private static String describe(HostInput in) {
    StringBuilder sb = new StringBuilder(ElementType.describe(in.getElemType())).append('[');
    for (int i = 0; i < in.getShapeCount(); i++) {
      Dim d = in.getShape(i);
      sb.append(i == 0 ? "" : ", ").append(d.hasSize() ? String.valueOf(d.getSize()) : d.getSymbol());
    }
    return sb.append(']').toString();
  }
}
