package dev.graft.runtime.session;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.ExtensionRegistryLite;
import com.google.protobuf.WireFormat;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Frozen weights of the host model, read once from the host ONNX file into direct little-endian
 * buffers and wrapped as ONNX Runtime tensors without copying, to be fed to sessions with
 * {@code SessionOptions.addExternalInitializers}.
 *
 * <p>The host is read as a stream: only {@code ModelProto.graph.initializer} entries are decoded,
 * one at a time, and only those asked for are kept. Data may be in {@code raw_data}, in the typed
 * fields ({@code float_data}, {@code int32_data}, {@code int64_data}, {@code double_data}) or in
 * the host's own external data files (relative to the host file or resource).
 */
public final class HostWeights implements AutoCloseable {
  private static final int MODEL_GRAPH = 7;
  private static final int GRAPH_INITIALIZER = 5;

  /** A host weight: its element type (ONNX number), dims and the direct buffer with its bytes. */
  public record Weight(String name, int dataType, long[] dims, ByteBuffer data) {}

  private final String source;
  private final Map<String, Weight> weights;
  private final Map<String, OnnxTensor> tensors;

  private HostWeights(String source, Map<String, Weight> weights, Map<String, OnnxTensor> tensors) {
    this.source = source;
    this.weights = weights;
    this.tensors = tensors;
  }

  /** Reads the named initializers from a host ONNX file; external data files are resolved beside it. */
  public static HostWeights read(Path host, Collection<String> names) {
    try (InputStream in = new BufferedInputStream(Files.newInputStream(host), 1 << 16)) {
      Path dir = host.toAbsolutePath().getParent();
      return read(host.toString(), in, names, (location, offset, into) -> readFile(dir.resolve(location), offset, into));
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read host model " + host + ": " + e.getMessage(), e);
    }
  }

  /**
   * Reads the named initializers from a host ONNX classpath resource (absolute name, without a
   * leading slash, as for {@link ClassLoader#getResource}).
   */
  public static HostWeights readResource(ClassLoader loader, String resource, Collection<String> names) {
    InputStream raw = loader.getResourceAsStream(resource);
    if (raw == null) {
      throw new GraftException(
          RuntimeErrorCode.IO,
          "host model resource '" + resource + "' is not on the classpath; add the jar that holds it,"
              + " or give the host file with ModelOptions.withHost(Path)");
    }
    String folder = resource.contains("/") ? resource.substring(0, resource.lastIndexOf('/') + 1) : "";
    try (InputStream in = new BufferedInputStream(raw, 1 << 16)) {
      return read(resource, in, names, (location, offset, into) -> {
        String sibling = folder + location;
        try (InputStream data = loader.getResourceAsStream(sibling)) {
          if (data == null) {
            throw new FormatException(resource, "external data resource '" + sibling + "' is not on the classpath");
          }
          data.skipNBytes(offset);
          byte[] chunk = new byte[1 << 16];
          while (into.hasRemaining()) {
            int n = data.read(chunk, 0, Math.min(chunk.length, into.remaining()));
            if (n < 0) {
              throw new FormatException(sibling, "external data ends before " + (offset + into.capacity()) + " bytes");
            }
            into.put(chunk, 0, n);
          }
        }
      });
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read host model resource " + resource + ": " + e.getMessage(), e);
    }
  }

  /** Reads {@code into.remaining()} bytes of an external data file from {@code offset}. */
  private interface ExternalReader {
    void read(String location, long offset, ByteBuffer into) throws IOException;
  }

  /** No host weights (an adapter graph that reads none). */
  public static HostWeights none() {
    return new HostWeights("(no host)", Map.of(), Map.of());
  }

  private static HostWeights read(
      String source, InputStream in, Collection<String> names, ExternalReader reader) throws IOException {
    Set<String> wanted = new TreeSet<>(names);
    Map<String, Weight> found = new LinkedHashMap<>();
    CodedInputStream cis = CodedInputStream.newInstance(in);
    cis.setSizeLimit(Integer.MAX_VALUE);
    while (!cis.isAtEnd()) {
      int tag = cis.readTag();
      if (WireFormat.getTagFieldNumber(tag) == MODEL_GRAPH
          && WireFormat.getTagWireType(tag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
        int length = cis.readRawVarint32();
        int limit = cis.pushLimit(length);
        while (!cis.isAtEnd()) {
          int graphTag = cis.readTag();
          if (WireFormat.getTagFieldNumber(graphTag) == GRAPH_INITIALIZER
              && WireFormat.getTagWireType(graphTag) == WireFormat.WIRETYPE_LENGTH_DELIMITED) {
            TensorProto.Builder b = TensorProto.newBuilder();
            cis.readMessage(b, ExtensionRegistryLite.getEmptyRegistry());
            if (wanted.contains(b.getName())) {
              found.put(b.getName(), toWeight(source, b.build(), reader));
            }
          } else if (!cis.skipField(graphTag)) {
            break;
          }
        }
        cis.popLimit(limit);
      } else if (!cis.skipField(tag)) {
        break;
      }
    }
    Set<String> missing = new TreeSet<>(wanted);
    missing.removeAll(found.keySet());
    if (!missing.isEmpty()) {
      throw new FormatException(
          source, "the host has no initializer named " + missing + "; was the adapter compiled against another host?");
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> tensors = new LinkedHashMap<>();
    try {
      for (Weight w : found.values()) {
        ElementType type = ElementType.ofOnnx(w.dataType());
        tensors.put(w.name(), OnnxTensor.createTensor(env, w.data(), w.dims(), type.javaType));
      }
    } catch (OrtException e) {
      tensors.values().forEach(OnnxTensor::close);
      throw new GraftException(RuntimeErrorCode.ONNX_RUNTIME, "cannot wrap host weights as tensors: " + e.getMessage(), e);
    }
    return new HostWeights(source, Collections.unmodifiableMap(found), Collections.unmodifiableMap(tensors));
  }

  static Weight toWeight(String source, TensorProto t, ExternalReader reader) {
    ElementType type = ElementType.ofOnnx(t.getDataType());
    if (type == null) {
      throw new FormatException(
          source, "host initializer '" + t.getName() + "' has unsupported element type " + t.getDataType());
    }
    long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    long count = 1;
    for (long d : dims) {
      count = Math.multiplyExact(count, d);
    }
    long byteCount = Math.multiplyExact(count, (long) type.bytes);
    if (byteCount > Integer.MAX_VALUE) {
      throw new FormatException(source, "host initializer '" + t.getName() + "' is larger than 2 GiB");
    }
    ByteBuffer buf = ByteBuffer.allocateDirect((int) byteCount).order(ByteOrder.LITTLE_ENDIAN);
    if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      readExternal(source, t, reader, buf);
    } else if (!t.getRawData().isEmpty()) {
      checkCount(source, t, t.getRawData().size(), byteCount);
      t.getRawData().copyTo(buf);
    } else {
      switch (type) {
        case FLOAT -> {
          checkCount(source, t, t.getFloatDataCount(), count);
          t.getFloatDataList().forEach(buf::putFloat);
        }
        case DOUBLE -> {
          checkCount(source, t, t.getDoubleDataCount(), count);
          t.getDoubleDataList().forEach(buf::putDouble);
        }
        case INT64 -> {
          checkCount(source, t, t.getInt64DataCount(), count);
          t.getInt64DataList().forEach(buf::putLong);
        }
        case INT32 -> {
          checkCount(source, t, t.getInt32DataCount(), count);
          t.getInt32DataList().forEach(buf::putInt);
        }
        case INT16, FLOAT16, BFLOAT16 -> {
          checkCount(source, t, t.getInt32DataCount(), count);
          t.getInt32DataList().forEach(v -> buf.putShort((short) (int) v));
        }
        case INT8, UINT8, BOOL -> {
          checkCount(source, t, t.getInt32DataCount(), count);
          t.getInt32DataList().forEach(v -> buf.put((byte) (int) v));
        }
      }
    }
    buf.clear();
    return new Weight(t.getName(), t.getDataType(), dims, buf);
  }

  private static void readExternal(String source, TensorProto t, ExternalReader reader, ByteBuffer buf) {
    String location = null;
    long offset = 0;
    long length = -1;
    for (StringStringEntryProto e : t.getExternalDataList()) {
      switch (e.getKey()) {
        case "location" -> location = e.getValue();
        case "offset" -> offset = Long.parseLong(e.getValue());
        case "length" -> length = Long.parseLong(e.getValue());
        default -> {}
      }
    }
    if (location == null) {
      throw new FormatException(source, "host initializer '" + t.getName() + "' is external but has no location");
    }
    if (length >= 0 && length != buf.capacity()) {
      throw new FormatException(
          source,
          "host initializer '" + t.getName() + "' external length " + length + " does not match its dims ("
              + buf.capacity() + " bytes)");
    }
    try {
      reader.read(location, offset, buf);
    } catch (IOException e) {
      throw new GraftException(
          RuntimeErrorCode.IO,
          "cannot read external data of host initializer '" + t.getName() + "' from " + location + ": " + e.getMessage(),
          e);
    }
  }

  private static void readFile(Path file, long offset, ByteBuffer into) throws IOException {
    try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "r")) {
      if (offset + into.remaining() > raf.length()) {
        throw new FormatException(file.toString(), "external data runs past the end of the file");
      }
      var channel = raf.getChannel();
      long pos = offset;
      while (into.hasRemaining()) {
        int n = channel.read(into, pos);
        if (n < 0) {
          throw new FormatException(file.toString(), "external data ends early");
        }
        pos += n;
      }
    }
  }

  private static void checkCount(String source, TensorProto t, long given, long expected) {
    if (given != expected) {
      throw new FormatException(
          source,
          "host initializer '" + t.getName() + "' has " + given + " values (or bytes), its dims "
              + Arrays.toString(t.getDimsList().toArray()) + " need " + expected);
    }
  }

  /** Where the weights were read from. */
  public String source() {
    return source;
  }

  /** The weights by name, in file order. */
  public Map<String, Weight> weights() {
    return weights;
  }

  /** The weights as ONNX Runtime tensors over the direct buffers (valid until {@link #close()}). */
  public Map<String, OnnxTensor> tensors() {
    return tensors;
  }

  /** The tensors for the given names, for {@code addExternalInitializers}. */
  public Map<String, OnnxTensorLike> subset(Collection<String> names) {
    Map<String, OnnxTensorLike> out = new LinkedHashMap<>();
    for (String n : names) {
      OnnxTensor t = tensors.get(n);
      if (t == null) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "host weight '" + n + "' was not read from " + source);
      }
      out.put(n, t);
    }
    return out;
  }

  @Override
  public void close() {
    tensors.values().forEach(OnnxTensor::close);
  }
}
