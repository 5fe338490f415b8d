package dev.graft.runtime.io;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * {@code {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}},
 * then the tensors' little-endian bytes (offsets relative to the end of the header).
 */
public final class Safetensors {
  /** Headers longer than this are rejected before they are read. */
  public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

  private static final String METADATA = "__metadata__";

  /**
   * The contents of a safetensors file.
   *
   * @param tensors tensors by name, in data order
   * @param metadata the {@code __metadata__} entries (empty when absent)
   */
  public record Contents(Map<String, TensorData> tensors, Map<String, String> metadata) {
    public Contents {
      tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
      metadata = Collections.unmodifiableMap(new LinkedHashMap<>(metadata));
    }
  }

  private Safetensors() {}

  /**
   * Reads a safetensors file. The header length is bounded ({@link #MAX_HEADER_BYTES} and the
   * file's size) before the header is read; the header is parsed (strict JSON) and every tensor's
   * dtype, dims (their product overflow-checked) and offsets are checked against its byte length
   * and the file's size before any tensor is allocated; then each tensor's range alone is read.
   * Every failure is a {@link GraftException} ({@link FormatException} for a malformed file).
   */
  public static Contents read(Path file) {
    String src = file.toString();
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 8) {
        throw new FormatException(src, "too short for a safetensors file (" + size + " bytes)");
      }
      ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, lenBuf, 0);
      long headerLen = lenBuf.getLong(0);
      if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || headerLen > size - 8) {
        throw new FormatException(
            src,
            "header length " + Long.toUnsignedString(headerLen) + " is out of range (at most "
                + Math.min(MAX_HEADER_BYTES, size - 8) + " for this file of " + size + " bytes)");
      }
      ByteBuffer header = ByteBuffer.allocate((int) headerLen);
      readFully(ch, header, 8);
      long dataStart = 8 + headerLen;
      Layout layout = layout(src, new String(header.array(), StandardCharsets.UTF_8), size - dataStart);
      long total = 0;
      for (Entry en : layout.entries()) {
        total += en.end() - en.begin();
      }
      long max = Runtime.getRuntime().maxMemory();
      if (total > max) {
        throw new GraftException(RuntimeErrorCode.IO,
            "cannot read " + src + ": its tensors need " + total + " bytes, more than this JVM's heap (" + max + ")");
      }
      Map<String, TensorData> tensors = new LinkedHashMap<>();
      for (Entry en : layout.entries()) {
        ByteBuffer b;
        try {
          b = ByteBuffer.allocate((int) (en.end() - en.begin()));
        } catch (OutOfMemoryError e) {
          throw new GraftException(RuntimeErrorCode.IO,
              "cannot read " + src + ": not enough memory for tensor '" + en.name() + "' (" + (en.end() - en.begin())
                  + " bytes)", e);
        }
        readFully(ch, b, dataStart + en.begin());
        tensors.put(en.name(), new TensorData(en.dtype(), en.shape(), b.array()));
      }
      return new Contents(tensors, layout.metadata());
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + file + ": " + e, e);
    }
  }

  private static void readFully(FileChannel ch, ByteBuffer buf, long pos) throws IOException {
    while (buf.hasRemaining()) {
      int n = ch.read(buf, pos + buf.position());
      if (n < 0) {
        throw new IOException("unexpected end of file");
      }
    }
  }

  private record Entry(String name, DType dtype, long[] shape, long begin, long end) {}

  /** A parsed, checked header: the tensors in data order and the metadata. */
  private record Layout(List<Entry> entries, Map<String, String> metadata) {}

  /** Parses a header and checks it against a data section of {@code dataLen} bytes. */
  private static Layout layout(String src, String headerText, long dataLen) {
    JsonObject header = StrictJson.parseObject(src + " (header)", headerText.strip());
    Map<String, String> metadata = new LinkedHashMap<>();
    List<Entry> entries = new ArrayList<>();
    for (Map.Entry<String, JsonElement> e : header.entrySet()) {
      String name = e.getKey();
      if (name.equals(METADATA)) {
        if (!e.getValue().isJsonObject()) {
          throw new FormatException(src, "__metadata__ must be an object of strings");
        }
        for (Map.Entry<String, JsonElement> m : e.getValue().getAsJsonObject().entrySet()) {
          if (!m.getValue().isJsonPrimitive() || !m.getValue().getAsJsonPrimitive().isString()) {
            throw new FormatException(src, "__metadata__." + m.getKey() + " must be a string");
          }
          metadata.put(m.getKey(), m.getValue().getAsString());
        }
        continue;
      }
      entries.add(entry(src, name, e.getValue()));
    }
    entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
    long expectedBegin = 0;
    for (Entry en : entries) {
      long bytes;
      try {
        bytes = Math.multiplyExact(TensorData.elementCount(en.shape()), (long) en.dtype().size());
      } catch (ArithmeticException x) {
        throw new FormatException(src, "tensor '" + en.name() + "' " + en.dtype() + Arrays.toString(en.shape())
            + " has more elements than can be counted", x);
      }
      if (en.end() - en.begin() != bytes) {
        throw new FormatException(
            src,
            "tensor '" + en.name() + "' " + en.dtype() + Arrays.toString(en.shape()) + " needs " + bytes
                + " bytes, its data_offsets [" + en.begin() + ", " + en.end() + "] give " + (en.end() - en.begin()));
      }
      if (en.begin() != expectedBegin) {
        throw new FormatException(
            src,
            "tensor '" + en.name() + "' data_offsets start at " + en.begin() + ", expected " + expectedBegin
                + " (tensors must cover the data without gaps or overlaps)");
      }
      if (en.end() > dataLen) {
        throw new FormatException(
            src, "tensor '" + en.name() + "' ends at " + en.end() + ", past the data (" + dataLen + " bytes)");
      }
      if (bytes > Integer.MAX_VALUE - 8) {
        throw new FormatException(src, "tensor '" + en.name() + "' of " + bytes + " bytes is larger than 2 GiB,"
            + " which is not supported");
      }
      expectedBegin = en.end();
    }
    if (expectedBegin != dataLen) {
      throw new FormatException(
          src, "the tensors cover " + expectedBegin + " bytes of data, the file holds " + dataLen);
    }
    return new Layout(entries, metadata);
  }

  private static Entry entry(String src, String name, JsonElement value) {
    try {
      JsonObject o = value.getAsJsonObject();
      String dtypeName = o.get("dtype").getAsString();
      DType dtype = DType.parse(dtypeName);
      if (dtype == null) {
        throw new FormatException(
            src, "tensor '" + name + "' has dtype " + dtypeName + "; supported: " + Arrays.toString(DType.values()));
      }
      JsonArray shapeJson = o.getAsJsonArray("shape");
      long[] shape = new long[shapeJson.size()];
      for (int i = 0; i < shape.length; i++) {
        shape[i] = integer(shapeJson.get(i));
        if (shape[i] < 0) {
          throw new FormatException(src, "tensor '" + name + "' has a negative dimension");
        }
      }
      JsonArray offsets = o.getAsJsonArray("data_offsets");
      if (offsets.size() != 2) {
        throw new FormatException(src, "tensor '" + name + "' data_offsets must be [begin, end]");
      }
      long begin = integer(offsets.get(0));
      long end = integer(offsets.get(1));
      if (begin < 0 || end < begin) {
        throw new FormatException(src, "tensor '" + name + "' has data_offsets [" + begin + ", " + end + "]");
      }
      return new Entry(name, dtype, shape, begin, end);
    } catch (RuntimeException e) {
      if (e instanceof FormatException f) {
        throw f;
      }
      throw new FormatException(src, "tensor '" + name + "' has a malformed header entry: " + e.getMessage(), e);
    }
  }

  /** A JSON number that is an integer in the range of a long (else ArithmeticException or a cast error). */
  private static long integer(JsonElement e) {
    if (!e.isJsonPrimitive() || !e.getAsJsonPrimitive().isNumber()) {
      throw new IllegalStateException("expected an integer, got " + e);
    }
    return e.getAsBigDecimal().longValueExact();
  }

  /** The bytes of a safetensors file holding {@code tensors} (sorted by name) and {@code metadata}. */
  public static byte[] toBytes(Map<String, TensorData> tensors, Map<String, String> metadata) {
    Map<String, TensorData> sorted = new TreeMap<>(tensors);
    JsonObject header = new JsonObject();
    if (!metadata.isEmpty()) {
      JsonObject meta = new JsonObject();
      new TreeMap<>(metadata).forEach(meta::addProperty);
      header.add(METADATA, meta);
    }
    long offset = 0;
    for (Map.Entry<String, TensorData> e : sorted.entrySet()) {
      if (e.getKey().equals(METADATA)) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "a tensor may not be named __metadata__");
      }
      TensorData t = e.getValue();
      JsonObject o = new JsonObject();
      o.addProperty("dtype", t.dtype().name());
      JsonArray shape = new JsonArray();
      for (long d : t.shape()) {
        shape.add(d);
      }
      o.add("shape", shape);
      JsonArray offsets = new JsonArray();
      offsets.add(offset);
      offsets.add(offset + t.data().length);
      o.add("data_offsets", offsets);
      header.add(e.getKey(), o);
      offset += t.data().length;
    }
    byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) / 8 * 8;
    ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(8 + padded + offset)).order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(padded);
    out.put(json);
    for (int i = json.length; i < padded; i++) {
      out.put((byte) ' ');
    }
    for (TensorData t : sorted.values()) {
      out.put(t.data());
    }
    return out.array();
  }

  /** Writes a safetensors file atomically (see {@link AtomicFiles}). */
  public static void write(Path file, Map<String, TensorData> tensors, Map<String, String> metadata) {
    AtomicFiles.write(file, toBytes(tensors, metadata));
  }
}
