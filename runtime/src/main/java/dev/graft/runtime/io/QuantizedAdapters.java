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
 * "mean":μ,"std":σ}}, μ and σ float32 values written exactly); the others (the head, vectors,
 * biases) as F32. The {@code [μ, σ]} companions ({@code Init.QUANTIZE_STATS}) are not tensors of
 * the file: they are the metadata's μ and σ. Metadata {@code format} is {@value #FORMAT}, {@code
 * graft} the graft's name.
 *
 * <p>The codes are those the forward pass computes, {@code c = #\{t_k < (w − μ)/(σ + ε)\}} in
 * float32 with the companion's μ, σ and the float32 thresholds (midpoints of the manifest's
 * levels). A load restores μ and σ exactly and gives each weight {@code μ + (σ + ε)·level(c)} (the
 * centre of its code's cell), so the forward pass reads {@code μ + σ·level(c)} with the same codes,
 * μ and σ: the saved model's value, bit for bit.
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

  /** One quantized tensor: its codes, bits, and the float32 mean and standard deviation it was standardized with. */
  public record Packed(int bits, int[] codes, float mean, float std) {}

  /**
   * The codes of {@code w} standardized with {@code mean}, {@code std} and {@code epsilon} against
   * the thresholds of {@code levels} (2^b, ascending), in the float32 arithmetic of the forward
   * pass: {@code z = (w − μ) / (σ + ε)}, code = how many thresholds z exceeds.
   */
  public static Packed quantize(float[] w, float mean, float std, double epsilon, double[] levels) {
    int bits = Integer.numberOfTrailingZeros(levels.length);
    float[] t = thresholds(levels);
    float denominator = std + (float) epsilon;
    int[] codes = new int[w.length];
    for (int i = 0; i < w.length; i++) {
      float z = (w[i] - mean) / denominator;
      int c = 0;
      for (float tk : t) {
        if (z > tk) {
          c++;
        }
      }
      codes[i] = c;
    }
    return new Packed(bits, codes, mean, std);
  }

  /** The float32 thresholds of the forward pass: midpoints of adjacent levels, rounded. */
  private static float[] thresholds(double[] levels) {
    float[] t = new float[levels.length - 1];
    for (int k = 0; k < t.length; k++) {
      t[k] = (float) ((levels[k] + levels[k + 1]) / 2);
    }
    return t;
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
      if (!p.getQuantizeStatsOf().isEmpty()) {
        continue;
      }
      float[] w = store.getParameter(p.getName());
      if (p.getQuantizeBits() == 0) {
        tensors.put(p.getName(), TensorData.ofFloats(shape, w));
        continue;
      }
      float[] stats = store.getParameter(statsOf(m).get(p.getName()));
      Packed q = quantize(w, stats[0], stats[1], p.getQuantizeEpsilon(), levels(p));
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
      if (!p.getQuantizeStatsOf().isEmpty()) {
        continue;
      }
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
      float mean = (float) number(src, name, meta, "mean");
      float std = (float) number(src, name, meta, "std");
      if (!Float.isFinite(mean) || !(std >= 0) || !Float.isFinite(std)) {
        throw invalid(src, name, "a finite float32 mean and a finite float32 std >= 0", "mean " + mean + ", std " + std);
      }
      if (t.dtype() != DType.U8 || t.shape().length != 1) {
        throw invalid(src, name, "U8 packed codes [bytes]", t.dtype() + Arrays.toString(t.shape()));
      }
      Packed packed = new Packed(bits, unpack(src, name, t.data(), n, bits), mean, std);
      values.put(name, latent(src, name, packed, p.getQuantizeEpsilon(), levels(p)));
      values.put(statsOf(m).get(name), new float[] {mean, std});
    }
    TreeSet<String> extra = new TreeSet<>(c.tensors().keySet());
    m.getParametersList().stream().filter(p -> p.getQuantizeStatsOf().isEmpty()).forEach(p -> extra.remove(p.getName()));
    if (!extra.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, src + " holds tensors graft '" + m.getName()
          + "' does not have: " + extra);
    }
    values.forEach(store::setParameter);
  }

  /**
   * The values a load gives a quantized tensor: {@code μ + (σ + ε)·level(c)} in float32, whose
   * standardized value is its level, the centre of its code's cell; the codes are checked to come
   * out again (they could not only where μ is some 10⁶ times σ and float32 cannot tell the cells
   * apart).
   *
   * @throws GraftException {@code GRAFT-R303} when a code does not come out again
   */
  static float[] latent(String src, String name, Packed p, double epsilon, double[] levels) {
    float denominator = p.std() + (float) epsilon;
    float[] out = new float[p.codes().length];
    for (int i = 0; i < out.length; i++) {
      out[i] = p.mean() + denominator * (float) levels[p.codes()[i]];
    }
    int[] again = quantize(out, p.mean(), p.std(), epsilon, levels).codes();
    for (int i = 0; i < out.length; i++) {
      if (again[i] != p.codes()[i]) {
        throw new GraftException(RuntimeErrorCode.QUANTIZED_CODES_UNREPRODUCIBLE, src + ": tensor '" + name
            + "' code " + p.codes()[i] + " at index " + i + " cannot be given a float32 weight that standardizes back"
            + " to it (mean " + p.mean() + ", std " + p.std() + ")");
      }
    }
    return out;
  }

  /** Each quantized parameter's {@code [μ, σ]} companion, by the quantized parameter's name. */
  private static Map<String, String> statsOf(Manifest m) {
    Map<String, String> out = new LinkedHashMap<>();
    m.getParametersList().stream().filter(p -> !p.getQuantizeStatsOf().isEmpty())
        .forEach(p -> out.put(p.getQuantizeStatsOf(), p.getName()));
    return out;
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
