package dev.graft.runtime.feed;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.session.DirectBuffers;
import dev.graft.runtime.session.ElementType;
import dev.graft.runtime.session.Sessions;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/** The host inputs of a batch ({@code [batch, sequence]} per name), checked against the manifest and made tensors. */
public final class HostInputs {
  private HostInputs() {}

  /** The batch size of host inputs (already checked by {@link #tensors}). */
  public static int batchSize(Map<String, long[][]> hostInputs) {
    return hostInputs.values().iterator().next().length;
  }

  /**
   * Validates host inputs against the manifest (names, rank, fixed sizes, symbols shared between
   * inputs, element type, an attention mask's values being 0 or 1, ids within the table they
   * index, the sequence within the host's positions) and makes tensors over direct
   * buffers; the caller closes them.
   */
  public static Map<String, OnnxTensor> tensors(OrtEnvironment env, Manifest manifest, Map<String, long[][]> given) {
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
    Map<String, OnnxTensor> out = new LinkedHashMap<>();
    try {
      for (HostInput in : manifest.getInputsList()) {
        long[][] rows = given.get(in.getName());
        int batch = rows.length;
        int seq = batch == 0 ? 0 : rows[0].length;
        for (int r = 1; r < batch; r++) {
          if (rows[r].length != seq) {
            throw new TensorMismatchException(
                in.getName(), "rectangular [batch, sequence] (pad the batch)",
                "row 0 has " + seq + " values, row " + r + " has " + rows[r].length);
          }
        }
        long[] actual = {batch, seq};
        if (batch == 0 || seq == 0) {
          throw new TensorMismatchException(in.getName(), describe(in), Arrays.toString(actual), "empty batch");
        }
        if (in.getShapeCount() != 2) {
          throw new TensorMismatchException(in.getName(), describe(in), "rank 2 " + Arrays.toString(actual));
        }
        for (int d = 0; d < 2; d++) {
          Dim dim = in.getShape(d);
          if (dim.hasSize() && dim.getSize() > 0 && dim.getSize() != actual[d]) {
            throw new TensorMismatchException(in.getName(), describe(in), Arrays.toString(actual));
          }
          if (dim.hasSymbol() && !dim.getSymbol().isEmpty()) {
            Long prior = symbols.putIfAbsent(dim.getSymbol(), actual[d]);
            if (prior != null && prior != actual[d]) {
              throw new TensorMismatchException(
                  in.getName(), describe(in) + " with " + dim.getSymbol() + " = " + prior + " (from "
                      + symbolSource.get(dim.getSymbol()) + ")",
                  Arrays.toString(actual));
            }
            symbolSource.putIfAbsent(dim.getSymbol(), in.getName());
          }
        }
        if (in.getMask()) {
          checkMask(in.getName(), rows);
        }
        checkLimits(in, rows, seq);
        if (in.getElemType() == ElementType.INT64.onnx) {
          LongBuffer buf = DirectBuffers.longs(batch * seq);
          for (long[] row : rows) {
            buf.put(row);
          }
          buf.clear();
          out.put(in.getName(), OnnxTensor.createTensor(env, buf, actual));
        } else if (in.getElemType() == ElementType.INT32.onnx) {
          IntBuffer buf = DirectBuffers.ints(batch * seq);
          for (long[] row : rows) {
            for (long x : row) {
              buf.put(Math.toIntExact(x));
            }
          }
          buf.clear();
          out.put(in.getName(), OnnxTensor.createTensor(env, buf, actual));
        } else {
          throw new TensorMismatchException(
              in.getName(), "an integer host input", ElementType.describe(in.getElemType()), "unsupported by this API");
        }
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

  /** An attention mask (the manifest marks it) holds only 0 and 1: any other value would scale, not mask. */
  private static void checkMask(String name, long[][] rows) {
    for (int r = 0; r < rows.length; r++) {
      for (int c = 0; c < rows[r].length; c++) {
        if (rows[r][c] != 0 && rows[r][c] != 1) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT, "host input '" + name + "' is an attention mask: values"
              + " must be 0 or 1, got " + rows[r][c] + " at [" + r + ", " + c + "]");
        }
      }
    }
  }

  /**
   * The limits the compiler found in the host: values that index a table must be rows of it (ONNX's
   * Gather would wrap a negative one around, or fail in ONNX Runtime with its own message), and no
   * sequence may be longer than the position table.
   */
  private static void checkLimits(HostInput in, long[][] rows, int seq) {
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
    for (int r = 0; r < rows.length; r++) {
      for (int c = 0; c < rows[r].length; c++) {
        long v = rows[r][c];
        if (v < 0 || v >= limit) {
          throw new GraftException(RuntimeErrorCode.INDEX_OUT_OF_RANGE, "host input '" + in.getName() + "' indexes a"
              + " host table of " + limit + " rows: values must be in [0, " + limit + "), got "
              + v + " at [" + r + ", " + c + "]");
        }
      }
    }
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
