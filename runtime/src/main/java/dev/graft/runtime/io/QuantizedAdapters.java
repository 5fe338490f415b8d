package dev.graft.runtime.io;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.runtime.state.ParameterStore;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A quantized adapter's parameters bit-packed in a safetensors file: each parameter the manifest
 * quantizes ({@code quantizeBits} b &gt; 0) as its codes, b bits per weight (code i at bits {@code
 * i·b … i·b + b − 1} counted from the least significant bit of byte 0, the last byte's unused
 * bits zero), a U8 tensor {@code <name>} of {@code ceil(n·b / 8)} bytes, with its bits, shape, mean
 * μ and standard deviation σ in the metadata entry {@code <name>} ({@code {"bits":b,"shape":[…],
 * "mean":μ,"std":σ}}); the others (the head, vectors, biases) as F32. Metadata {@code format} is
 * {@value #FORMAT}, {@code graft} the graft's name.
 *
 * <p>The codes are those of the forward pass, {@code c = #\{thresholds < (w − μ)/σ\}} with μ, σ
 * the mean and population standard deviation of the float32 values (in double) and the
 * thresholds the midpoints of the manifest's levels; a load gives each weight {@code μ + σ·z}
 * with z the tensor's levels standardized to mean 0 and deviation 1 (each still in its code's
 * cell), so the forward pass, which standardizes again, reads {@code μ + σ·level(c)} up to
 * float rounding of μ and σ.
 *
 * <p>A load reads and checks everything (format, every name, bits, shape, packed length, padding
 * bits, finite μ and σ ≥ 0, finite values) before it sets anything.
 */
public final class QuantizedAdapters {
  /** The metadata {@code format} of a bit-packed adapter file. */
  public static final String FORMAT = "graft-quantized-adapter-1";
  /** The file name in an adapter folder. */
  public static final String FILE = "adapter_quantized.safetensors";

  private QuantizedAdapters() {}

  /** One quantized tensor: its codes, bits, mean and standard deviation. */
  public record Packed(int bits, int[] codes, double mean, double std) {}

  /** Codes of {@code w} at {@code levels} (2^b, ascending), with its mean and population standard deviation. */
  public static Packed quantize(float[] w, double[] levels) {
    int bits = Integer.numberOfTrailingZeros(levels.length);
    double mean = 0;
    for (float x : w) {
      mean += x;
    }
    mean /= w.length;
    double var = 0;
    for (float x : w) {
      var += (x - mean) * (x - mean);
    }
    double std = Math.sqrt(var / w.length);
    int[] codes = new int[w.length];
    for (int i = 0; i < w.length; i++) {
      double z = (w[i] - mean) / std;
      int c = 0;
      for (int k = 0; k + 1 < levels.length; k++) {
        if (z > (levels[k] + levels[k + 1]) / 2) {
          c++;
        }
      }
      codes[i] = c;
    }
    return new Packed(bits, codes, mean, std);
  }

  /** {@code μ + σ·level(c)} of each code, as float32. */
  public static float[] dequantize(Packed p, double[] levels) {
    float[] out = new float[p.codes().length];
    for (int i = 0; i < out.length; i++) {
      out[i] = (float) (p.mean() + p.std() * levels[p.codes()[i]]);
    }
    return out;
  }

  /** The codes at {@code bits} each, packed from the least significant bit of byte 0; unused bits zero. */
  public static byte[] pack(int[] codes, int bits) {
    byte[] out = new byte[Math.toIntExact(((long) codes.length * bits + 7) / 8)];
    for (int i = 0; i < codes.length; i++) {
      if (codes[i] < 0 || codes[i] >= 1 << bits) {
        throw new IllegalArgumentException("code " + codes[i] + " does not fit " + bits + " bits");
      }
      for (int k = 0; k < bits; k++) {
        if ((codes[i] >> k & 1) != 0) {
          long bit = (long) i * bits + k;
          out[(int) (bit >> 3)] |= (byte) (1 << (bit & 7));
        }
      }
    }
    return out;
  }

  /** The {@code n} codes of {@code bits} each in {@code packed}, which must be exactly {@code ceil(n·bits/8)} bytes with zero padding. */
  public static int[] unpack(String src, String name, byte[] packed, int n, int bits) {
    long expected = ((long) n * bits + 7) / 8;
    if (packed.length != expected) {
      throw invalid(src, name, "packed length " + expected + " bytes (" + n + " codes of " + bits + " bits)",
          packed.length + " bytes");
    }
    int[] codes = new int[n];
    for (int i = 0; i < n; i++) {
      int c = 0;
      for (int k = 0; k < bits; k++) {
        long bit = (long) i * bits + k;
        c |= (packed[(int) (bit >> 3)] >> (bit & 7) & 1) << k;
      }
      codes[i] = c;
    }
    for (long bit = (long) n * bits; bit < expected * 8; bit++) {
      if ((packed[(int) (bit >> 3)] >> (bit & 7) & 1) != 0) {
        throw invalid(src, name, "zero padding bits after the last code", "bit " + bit + " set");
      }
    }
    return codes;
  }

  /** Writes the store's parameters to {@code file}, bit-packed where quantized, replacing it atomically. */
  public static void save(ParameterStore store, Path file) {
    Manifest m = store.getManifest();
    requireQuantized(m);
    Map<String, TensorData> tensors = new LinkedHashMap<>();
    Map<String, String> metadata = new TreeMap<>();
    metadata.put("format", FORMAT);
    metadata.put("graft", m.getName());
    for (Parameter p : m.getParametersList()) {
      long[] shape = shape(p);
      float[] w = store.getParameter(p.getName());
      if (p.getQuantizeBits() == 0) {
        tensors.put(p.getName(), TensorData.ofFloats(shape, w));
        continue;
      }
      Packed q = quantize(w, levels(p));
      byte[] packed = pack(q.codes(), q.bits());
      tensors.put(p.getName(), new TensorData(DType.U8, new long[] {packed.length}, packed));
      JsonObject meta = new JsonObject();
      meta.addProperty("bits", q.bits());
      JsonArray dims = new JsonArray();
      for (long d : shape) {
        dims.add(d);
      }
      meta.add("shape", dims);
      meta.addProperty("mean", q.mean());
      meta.addProperty("std", q.std());
      metadata.put(p.getName(), meta.toString());
    }
    Safetensors.write(file, tensors, metadata);
  }

  /**
   * Reads {@code file} (saved by {@link #save} for this graft) into the store's parameters; nothing
   * changes unless the whole file is valid.
   */
  public static void load(ParameterStore store, Path file) {
    Manifest m = store.getManifest();
    requireQuantized(m);
    String src = file.toString();
    Safetensors.Contents c = Safetensors.read(file);
    if (!FORMAT.equals(c.metadata().get("format"))) {
      throw invalid(src, "format", FORMAT, String.valueOf(c.metadata().get("format")));
    }
    Map<String, float[]> values = new LinkedHashMap<>();
    for (Parameter p : m.getParametersList()) {
      String name = p.getName();
      TensorData t = c.tensors().get(name);
      if (t == null) {
        throw invalid(src, name, "a tensor '" + name + "'", "none");
      }
      long[] shape = shape(p);
      int n = Math.toIntExact(Arrays.stream(shape).reduce(1, Math::multiplyExact));
      if (p.getQuantizeBits() == 0) {
        if (t.dtype() != DType.F32 || !Arrays.equals(shape, t.shape())) {
          throw invalid(src, name, "F32" + Arrays.toString(shape), t.dtype() + Arrays.toString(t.shape()));
        }
        values.put(name, TensorData.requireFinite(src, name, t.toFloats()));
        continue;
      }
      String metaText = c.metadata().get(name);
      if (metaText == null) {
        throw invalid(src, name, "metadata entry '" + name + "' with bits, shape, mean and std", "none");
      }
      JsonObject meta = StrictJson.parseObject(src, metaText);
      int bits = integer(src, name, meta, "bits");
      if (bits != p.getQuantizeBits()) {
        throw invalid(src, name, p.getQuantizeBits() + " bits", bits + " bits");
      }
      JsonElement dims = meta.get("shape");
      long[] given = dims != null && dims.isJsonArray() ? longs(src, name, dims.getAsJsonArray()) : null;
      if (given == null || !Arrays.equals(shape, given)) {
        throw invalid(src, name, "shape " + Arrays.toString(shape), given == null ? String.valueOf(dims) : Arrays.toString(given));
      }
      double mean = number(src, name, meta, "mean");
      double std = number(src, name, meta, "std");
      if (!Double.isFinite(mean) || !(std >= 0) || !Double.isFinite(std)) {
        throw invalid(src, name, "a finite mean and a finite std >= 0", "mean " + mean + ", std " + std);
      }
      if (t.dtype() != DType.U8 || t.shape().length != 1) {
        throw invalid(src, name, "U8 packed codes [bytes]", t.dtype() + Arrays.toString(t.shape()));
      }
      int[] codes = unpack(src, name, t.data(), n, bits);
      values.put(name, latent(new Packed(bits, codes, mean, std), levels(p)));
    }
    TreeSet<String> extra = new TreeSet<>(c.tensors().keySet());
    m.getParametersList().forEach(p -> extra.remove(p.getName()));
    if (!extra.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, src + " holds tensors graft '" + m.getName()
          + "' does not have: " + extra);
    }
    values.forEach(store::setParameter);
  }

  /**
   * The values a load gives a quantized tensor: {@code μ + σ·z}, z its codes' levels standardized
   * to mean 0 and deviation 1 (so that the forward pass's own standardization finds μ, σ and the
   * same codes again); a tensor of one code (σ = 0 or all alike) gets {@link #dequantize}.
   */
  static float[] latent(Packed p, double[] levels) {
    int n = p.codes().length;
    double[] z = new double[n];
    double mean = 0;
    for (int i = 0; i < n; i++) {
      z[i] = levels[p.codes()[i]];
      mean += z[i];
    }
    mean /= n;
    double var = 0;
    for (double x : z) {
      var += (x - mean) * (x - mean);
    }
    double std = Math.sqrt(var / n);
    if (!(std > 0) || p.std() == 0) {
      return dequantize(p, levels);
    }
    for (int i = 0; i < n; i++) {
      z[i] = (z[i] - mean) / std;
    }
    // Standardizing can move a value across a threshold of a skewed tensor: pull such values back
    // into their cells and standardize again until every code is its own.
    double[] t = new double[levels.length - 1];
    for (int k = 0; k < t.length; k++) {
      t[k] = (levels[k] + levels[k + 1]) / 2;
    }
    for (int iter = 0; iter < 100; iter++) {
      float[] out = new float[n];
      for (int i = 0; i < n; i++) {
        out[i] = (float) (p.mean() + p.std() * z[i]);
      }
      int[] again = quantize(out, levels).codes();
      if (Arrays.equals(again, p.codes())) {
        return out;
      }
      for (int i = 0; i < n; i++) {
        int c = p.codes()[i];
        double lo = c == 0 ? Double.NEGATIVE_INFINITY : t[c - 1];
        double hi = c == t.length ? Double.POSITIVE_INFINITY : t[c];
        z[i] = Math.min(Math.max(z[i], lo + 1e-3 * (levels[c] - lo)), hi - 1e-3 * (hi - levels[c]));
      }
      double m2 = Arrays.stream(z).average().orElse(0);
      double v2 = Arrays.stream(z).map(x -> (x - m2) * (x - m2)).sum() / n;
      for (int i = 0; i < n; i++) {
        z[i] = (z[i] - m2) / Math.sqrt(v2);
      }
    }
    throw new GraftException(RuntimeErrorCode.QUANTIZED_FILE_INVALID, "the codes of a bit-packed tensor cannot be"
        + " given values whose own mean and deviation reproduce them (a tensor of " + n + " codes of " + p.bits() + " bits)");
  }

  private static void requireQuantized(Manifest m) {
    if (m.getParametersList().stream().noneMatch(p -> p.getQuantizeBits() > 0)) {
      throw new GraftException(RuntimeErrorCode.QUANTIZED_NOT_QUANTIZED, "graft '" + m.getName()
          + "' quantizes no parameter; a bit-packed adapter needs one compiled with quantizeBits");
    }
  }

  private static double[] levels(Parameter p) {
    return p.getQuantizeLevelsList().stream().mapToDouble(Double::doubleValue).toArray();
  }

  private static long[] shape(Parameter p) {
    return p.getShapeList().stream().mapToLong(Long::longValue).toArray();
  }

  private static int integer(String src, String name, JsonObject meta, String key) {
    JsonElement e = meta.get(key);
    if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
      throw invalid(src, name, "an integer '" + key + "'", String.valueOf(e));
    }
    double v = e.getAsDouble();
    if (v != Math.rint(v) || Math.abs(v) > 64) {
      throw invalid(src, name, "an integer '" + key + "'", String.valueOf(e));
    }
    return (int) v;
  }

  private static double number(String src, String name, JsonObject meta, String key) {
    JsonElement e = meta.get(key);
    if (e == null || !e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
      throw invalid(src, name, "a number '" + key + "'", String.valueOf(e));
    }
    return e.getAsDouble();
  }

  private static long @org.jspecify.annotations.Nullable [] longs(String src, String name, JsonArray a) {
    if (a.size() > 8) {
      return null;
    }
    long[] out = new long[a.size()];
    for (int i = 0; i < out.length; i++) {
      JsonElement e = a.get(i);
      if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber() || e.getAsDouble() != Math.rint(e.getAsDouble())
          || !(e.getAsDouble() >= 0 && e.getAsDouble() < 1L << 40)) {
        return null;
      }
      out[i] = e.getAsLong();
    }
    return out;
  }

  private static GraftException invalid(String src, String name, String expected, String given) {
    return new GraftException(RuntimeErrorCode.QUANTIZED_FILE_INVALID, src + ": tensor '" + name + "' must have "
        + expected + ", got " + given);
  }
}
