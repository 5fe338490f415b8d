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
import dev.graft.spec.ExternalData;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.BufferedInputStream;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HexFormat;
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
  private final String sha256;
  private final Map<String, Weight> weights;
  private final Map<String, OnnxTensor> tensors;

  private HostWeights(String source, String sha256, Map<String, Weight> weights, Map<String, OnnxTensor> tensors) {
    this.source = source;
    this.sha256 = sha256;
    this.weights = weights;
    this.tensors = tensors;
  }

  /**
   * Reads the named initializers from a host ONNX file, and the SHA-256 of all its bytes (see
   * {@link #sha256()}). External data files are resolved inside the host's folder, as ONNX
   * Runtime does: a location must be relative, stay inside the folder once normalized and once
   * symbolic links are followed, and its offset and length must fit the file.
   */
  public static HostWeights read(Path host, Collection<String> names) {
    try (HashingInputStream in = new HashingInputStream(new BufferedInputStream(Files.newInputStream(host), 1 << 16))) {
      Path dir = host.toAbsolutePath().getParent();
      return read(host.toString(), in, names, (t, location, offset, into) -> readFile(host.toString(), t, dir, location, offset, into));
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read host model " + host + ": " + e.getMessage(), e);
    }
  }

  /**
   * Reads the named initializers from a host ONNX classpath resource (absolute name, without a
   * leading slash, as for {@link ClassLoader#getResource}); external data resources are resolved
   * beside it, by relative locations that stay in its folder.
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
    try (HashingInputStream in = new HashingInputStream(new BufferedInputStream(raw, 1 << 16))) {
      return read(resource, in, names, (t, location, offset, into) -> {
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
              throw doesNotFit(resource, t, offset, into.capacity());
            }
            into.put(chunk, 0, n);
          }
        } catch (java.io.EOFException e) {
          throw doesNotFit(resource, t, offset, into.capacity());
        }
      });
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read host model resource " + resource + ": " + e.getMessage(), e);
    }
  }

  /** Reads {@code into.remaining()} bytes of an external data file from {@code offset}. */
  private interface ExternalReader {
    /** {@code location} is relative and normalized (no {@code .} or {@code ..} segments). */
    void read(TensorProto t, String location, long offset, ByteBuffer into) throws IOException;
  }

  /** No host weights (an adapter graph that reads none). */
  public static HostWeights none() {
    return new HostWeights("(no host)", "", Map.of(), Map.of());
  }

  private static HostWeights read(
      String source, HashingInputStream in, Collection<String> names, ExternalReader reader) throws IOException {
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
    in.transferTo(OutputStream.nullOutputStream());
    String sha256 = in.hex();
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
    return new HostWeights(source, sha256, Collections.unmodifiableMap(found), Collections.unmodifiableMap(tensors));
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
      if (d < 0) {
        throw new FormatException(source, "host initializer '" + t.getName() + "' has a negative dim " + d);
      }
      count = d == 0 || count == 0 ? 0 : count > Integer.MAX_VALUE / d ? Long.MAX_VALUE : count * d;
    }
    long byteCount = count > Integer.MAX_VALUE ? Long.MAX_VALUE : count * type.bytes;
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
        case "offset" -> offset = externalNumber(source, t, "offset", e.getValue());
        case "length" -> length = externalNumber(source, t, "length", e.getValue());
        default -> {}
      }
    }
    if (location == null) {
      throw new FormatException(source, "host initializer '" + t.getName() + "' is external but has no location");
    }
    String relative = ExternalData.relativeLocation(location);
    if (relative == null) {
      throw notAllowed(source, t, location);
    }
    if (length >= 0 && length != buf.capacity()) {
      throw new FormatException(
          source,
          "host initializer '" + t.getName() + "' external length " + length + " does not match its dims ("
              + buf.capacity() + " bytes)");
    }
    try {
      reader.read(t, relative, offset, buf);
    } catch (IOException e) {
      throw new GraftException(
          RuntimeErrorCode.IO, "cannot read external data of host initializer '" + t.getName() + "' from '" + location + "'", e);
    }
  }

  /** An external data offset or length: a decimal number in 0..2^63-1. */
  private static long externalNumber(String source, TensorProto t, String key, String value) {
    long n;
    try {
      n = Long.parseLong(value.trim());
    } catch (NumberFormatException e) {
      n = -1;
    }
    if (n < 0) {
      throw new FormatException(source, "host initializer '" + t.getName() + "' has external data " + key + " '"
          + (value.length() > 40 ? value.substring(0, 40) + "…" : value) + "', not a number in 0.." + Long.MAX_VALUE);
    }
    return n;
  }

  private static GraftException notAllowed(String source, TensorProto t, String location) {
    return new GraftException(RuntimeErrorCode.EXTERNAL_DATA,
        source + ": host initializer '" + t.getName() + "' has its external data at '" + location
            + "', a location that is not allowed: external data must be at a relative path inside the host's folder");
  }

  private static GraftException doesNotFit(String source, TensorProto t, long offset, long length) {
    return new GraftException(RuntimeErrorCode.EXTERNAL_DATA,
        source + ": host initializer '" + t.getName() + "' external data (offset " + offset + ", " + length
            + " bytes) does not fit its data file");
  }

  /**
   * Reads external data from {@code dir}/{@code relative}, once the file's real path (symbolic
   * links followed) is known to be inside the real {@code dir}, and the range to fit it.
   */
  private static void readFile(String source, TensorProto t, Path dir, String relative, long offset, ByteBuffer into)
      throws IOException {
    ExternalData.Resolved place = ExternalData.resolve(dir, relative);
    if (place.place() == ExternalData.Place.MISSING) {
      throw new GraftException(RuntimeErrorCode.IO,
          source + ": host initializer '" + t.getName() + "' external data file '" + relative
              + "' is not in the host's folder");
    }
    if (place.place() != ExternalData.Place.INSIDE) {
      throw notAllowed(source, t, relative);
    }
    Path real = place.file();
    try (FileChannel channel = FileChannel.open(real, StandardOpenOption.READ)) {
      long size = channel.size();
      if (offset > size || into.remaining() > size - offset) {
        throw doesNotFit(source, t, offset, into.remaining());
      }
      long pos = offset;
      while (into.hasRemaining()) {
        int n = channel.read(into, pos);
        if (n < 0) {
          throw doesNotFit(source, t, offset, into.capacity());
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

  /** Hex SHA-256 of the host file's bytes, read while the weights were ({@code ""} for {@link #none()}). */
  public String sha256() {
    return sha256;
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

  /** Digests every byte that passes, skipped ones included (protobuf skips fields it does not decode). */
  private static final class HashingInputStream extends FilterInputStream {
    private final MessageDigest sha;

    HashingInputStream(InputStream in) {
      super(in);
      try {
        sha = MessageDigest.getInstance("SHA-256");
      } catch (NoSuchAlgorithmException e) {
        throw new IllegalStateException("the JDK has no SHA-256", e);
      }
    }

    @Override
    public int read() throws IOException {
      int b = in.read();
      if (b >= 0) {
        sha.update((byte) b);
      }
      return b;
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
      int n = in.read(b, off, len);
      if (n > 0) {
        sha.update(b, off, n);
      }
      return n;
    }

    @Override
    public long skip(long n) throws IOException {
      byte[] chunk = new byte[(int) Math.min(1 << 16, Math.max(n, 1))];
      long done = 0;
      while (done < n) {
        int r = read(chunk, 0, (int) Math.min(chunk.length, n - done));
        if (r < 0) {
          break;
        }
        done += r;
      }
      return done;
    }

    @Override
    public boolean markSupported() {
      return false;
    }

    String hex() {
      return HexFormat.of().formatHex(sha.digest());
    }
  }
}
