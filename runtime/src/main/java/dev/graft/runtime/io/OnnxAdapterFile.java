package dev.graft.runtime.io;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * ONNX Runtime's {@code .onnx_adapter} format, written and read by hand: a FlatBuffers buffer with
 * file identifier {@code TORT} whose root table is (schema {@code
 * onnxruntime/lora/adapter_format/adapter_schema.fbs}, format version 1)
 *
 * <pre>
 * table Adapter   { format_version:int; adapter_version:int; model_version:int; parameters:[Parameter]; }
 * table Parameter { name:string; dims:[int64]; data_type:TensorDataType; raw_data:[uint8] (force_align: 8); }
 * </pre>
 *
 * with {@code TensorDataType} the ONNX element types ({@code FLOAT = 1}, {@code FLOAT16 = 10},
 * {@code BFLOAT16 = 16}, …) and {@code raw_data} the parameter's little-endian bytes. ONNX Runtime
 * ({@code OrtLoraAdapter}) feeds each parameter as the graph input of the same name.
 *
 * <p>The writer lays the buffer out front to back (root offset, identifier, then each table after
 * its vtable, each string and vector after the table that refers to it), every table and vector
 * length 4-aligned and every {@code dims} and {@code raw_data} payload 8-aligned, as FlatBuffers'
 * verifier and {@code force_align} want.
 *
 * <p>The reader treats the file as hostile. The file's size is bounded ({@link #MAX_FILE_BYTES},
 * FlatBuffers' own limit, and the JVM's heap) before it is read; then every offset, vtable, table,
 * string and vector is checked to lie inside the buffer (and aligned as FlatBuffers' verifier
 * requires) before it is read; the version must be 1; every parameter must have a non-empty,
 * unique UTF-8 name, at most {@link #MAX_RANK} dims, none negative, whose product (times the
 * element size) does not overflow and equals {@code raw_data}'s length; and the payloads together must fit the file (so that tables
 * shared by many offsets cannot multiply the memory a read allocates). Only then are the payloads
 * copied. Every failure is a {@link GraftException} with code {@link RuntimeErrorCode#ONNX_ADAPTER}
 * ({@code GRAFT-R070}) naming the file, what was expected and what was found.
 *
 * <p>ONNX Runtime 1.29 reads every file this class writes except one with a parameter without
 * dims (a scalar), which it refuses ("dims is missing or empty"); this reader accepts scalars, as
 * the schema does.
 */
public final class OnnxAdapterFile {
  /** The format version this class writes and the only one it (and ONNX Runtime 1.29) reads. */
  public static final int FORMAT_VERSION = 1;
  /** Files larger than this are refused before they are read (FlatBuffers buffers are below 2 GiB). */
  public static final long MAX_FILE_BYTES = Integer.MAX_VALUE - 8L;
  /** The most dims a parameter may have. */
  public static final int MAX_RANK = 64;

  private static final byte[] IDENTIFIER = "TORT".getBytes(StandardCharsets.US_ASCII);

  /** Element types of parameters that Graft reads and writes; the numbers are ONNX's (and the schema's). */
  public enum DataType {
    FLOAT(1, 4),
    FLOAT16(10, 2),
    BFLOAT16(16, 2);

    private final int onnx;
    private final int size;

    DataType(int onnx, int size) {
      this.onnx = onnx;
      this.size = size;
    }

    /** The ONNX {@code TensorProto.DataType} number (the schema's {@code TensorDataType}). */
    public int onnx() {
      return onnx;
    }

    /** Bytes per element. */
    public int size() {
      return size;
    }

    /** The type of ONNX number {@code onnx}, or null for one Graft does not read. */
    public static @Nullable DataType of(int onnx) {
      for (DataType t : values()) {
        if (t.onnx == onnx) {
          return t;
        }
      }
      return null;
    }
  }

  /**
   * One parameter of an adapter file.
   *
   * @param name the graph input it is fed as
   * @param type element type
   * @param dims dimensions (empty for a scalar)
   * @param rawData little-endian bytes, {@code product(dims) * type.size()} of them
   */
  public record Parameter(String name, DataType type, long[] dims, byte[] rawData) {
    public Parameter {
      Objects.requireNonNull(name, "name");
      Objects.requireNonNull(type, "type");
      dims = dims.clone();
      long bytes;
      try {
        bytes = Math.multiplyExact(TensorData.elementCount(dims), (long) type.size());
      } catch (ArithmeticException | IllegalArgumentException e) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "parameter '" + name + "' has dims " + Arrays.toString(dims)
            + ": " + e.getMessage(), e);
      }
      if (bytes != rawData.length) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "parameter '" + name + "' " + type + Arrays.toString(dims)
            + " needs " + bytes + " bytes, given " + rawData.length);
      }
    }

    /**
     * A parameter of type {@code type} holding {@code values} (float32 values, rounded to the
     * nearest float16 or bfloat16, ties to even, for those types).
     */
    public static Parameter of(String name, DataType type, long[] dims, float[] values) {
      ByteBuffer b = ByteBuffer.allocate(Math.multiplyExact(values.length, type.size())).order(ByteOrder.LITTLE_ENDIAN);
      for (float v : values) {
        switch (type) {
          case FLOAT -> b.putFloat(v);
          case FLOAT16 -> b.putShort(HalfFloats.toHalf(v));
          case BFLOAT16 -> b.putShort(HalfFloats.toBfloat16(v));
        }
      }
      return new Parameter(name, type, dims, b.array());
    }

    /** The values as float32 (float16 and bfloat16 widen exactly). */
    public float[] toFloats() {
      ByteBuffer b = ByteBuffer.wrap(rawData).order(ByteOrder.LITTLE_ENDIAN);
      float[] out = new float[rawData.length / type.size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = switch (type) {
          case FLOAT -> b.getFloat(i * 4);
          case FLOAT16 -> HalfFloats.fromHalf(b.getShort(i * 2));
          case BFLOAT16 -> HalfFloats.fromBfloat16(b.getShort(i * 2));
        };
      }
      return out;
    }

    @Override
    public long[] dims() {
      return dims.clone();
    }

    @Override
    public byte[] rawData() {
      return rawData.clone();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Parameter p && p.name.equals(name) && p.type == type && Arrays.equals(p.dims, dims)
          && Arrays.equals(p.rawData, rawData);
    }

    @Override
    public int hashCode() {
      return Objects.hash(name, type, Arrays.hashCode(dims), Arrays.hashCode(rawData));
    }

    @Override
    public String toString() {
      return name + ": " + type + Arrays.toString(dims);
    }
  }

  /**
   * The contents of an adapter file.
   *
   * @param adapterVersion the file's {@code adapter_version} (the user's; ONNX Runtime ignores it)
   * @param modelVersion the file's {@code model_version} (likewise)
   * @param parameters the parameters, in file order, names unique
   */
  public record Contents(int adapterVersion, int modelVersion, List<Parameter> parameters) {
    public Contents {
      parameters = Collections.unmodifiableList(new ArrayList<>(parameters));
      Set<String> names = new HashSet<>();
      for (Parameter p : parameters) {
        if (p.name().isEmpty()) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT, "an adapter parameter needs a name");
        }
        if (!names.add(p.name())) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT, "two adapter parameters are named '" + p.name() + "'");
        }
      }
    }
  }

  private OnnxAdapterFile() {}

  // ---------------------------------------------------------------- writing

  /** Writes an adapter file atomically (see {@link AtomicFiles}); it is created with the umask's permissions. */
  public static void write(Path file, Contents contents) {
    AtomicFiles.write(file, toBytes(contents));
  }

  /** The bytes of an adapter file holding {@code contents}. */
  public static byte[] toBytes(Contents contents) {
    List<Parameter> params = contents.parameters();
    List<byte[]> names = new ArrayList<>();
    long size = 44 + 4L * params.size();
    for (Parameter p : params) {
      byte[] name = p.name().getBytes(StandardCharsets.UTF_8);
      names.add(name);
      size = align(size, 4) + 12 + 20;
      size = align(size, 4) + 4 + name.length + 1;
      size = align(size + 4, 8) - 4 + 4 + 8L * p.dims.length;
      size = align(size + 4, 8) - 4 + 4 + p.rawData.length;
    }
    size = align(size, 8);
    if (size > MAX_FILE_BYTES) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "an .onnx_adapter file holds at most " + MAX_FILE_BYTES + " bytes; these parameters need " + size);
    }
    ByteBuffer b = ByteBuffer.allocate((int) size).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(0, 20);
    b.put(4, IDENTIFIER);
    vtable(b, 8);
    b.putInt(20, 20 - 8);
    b.putInt(24, FORMAT_VERSION);
    b.putInt(28, contents.adapterVersion());
    b.putInt(32, contents.modelVersion());
    b.putInt(36, 40 - 36);
    b.putInt(40, params.size());
    int pos = 44 + 4 * params.size();
    for (int i = 0; i < params.size(); i++) {
      Parameter p = params.get(i);
      byte[] name = names.get(i);
      pos = (int) align(pos, 4);
      int vt = pos;
      vtable(b, vt);
      int table = vt + 12;
      int slot = 44 + 4 * i;
      b.putInt(slot, table - slot);
      b.putInt(table, table - vt);
      pos = (int) align(table + 20, 4);
      b.putInt(table + 4, pos - (table + 4));
      b.putInt(pos, name.length);
      b.put(pos + 4, name);
      pos += 4 + name.length + 1;
      pos = (int) align(pos + 4, 8) - 4;
      b.putInt(table + 8, pos - (table + 8));
      b.putInt(pos, p.dims.length);
      for (int d = 0; d < p.dims.length; d++) {
        b.putLong(pos + 4 + 8 * d, p.dims[d]);
      }
      pos += 4 + 8 * p.dims.length;
      b.putInt(table + 12, p.type.onnx());
      pos = (int) align(pos + 4, 8) - 4;
      b.putInt(table + 16, pos - (table + 16));
      b.putInt(pos, p.rawData.length);
      b.put(pos + 4, p.rawData);
      pos += 4 + p.rawData.length;
    }
    return b.array();
  }

  /** A vtable of four fields at {@code pos}, for a 20-byte table of four 4-byte fields. */
  private static void vtable(ByteBuffer b, int pos) {
    b.putShort(pos, (short) 12);
    b.putShort(pos + 2, (short) 20);
    for (int f = 0; f < 4; f++) {
      b.putShort(pos + 4 + 2 * f, (short) (4 + 4 * f));
    }
  }

  private static long align(long pos, int to) {
    return (pos + to - 1) / to * to;
  }

  // ---------------------------------------------------------------- reading

  /** Reads and checks an adapter file (see the class comment). */
  public static Contents read(Path file) {
    return parse(file.toString(), readBytes(file));
  }

  /**
   * The bytes of an adapter file, its size bounded ({@link #MAX_FILE_BYTES} and the heap) before
   * anything is allocated; not yet checked.
   */
  public static byte[] readBytes(Path file) {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      long heap = Runtime.getRuntime().maxMemory() / 2;
      if (size > MAX_FILE_BYTES || size > heap) {
        throw fail(file.toString(), "is " + size + " bytes; an .onnx_adapter file read here holds at most "
            + Math.min(MAX_FILE_BYTES, heap));
      }
      ByteBuffer buf = ByteBuffer.allocate((int) size);
      while (buf.hasRemaining()) {
        if (ch.read(buf, buf.position()) < 0) {
          throw fail(file.toString(), "ended while it was read (it shrank to " + buf.position() + " bytes)");
        }
      }
      return buf.array();
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + file + ": " + e, e);
    }
  }

  /** Parses and checks the bytes of an adapter file; {@code src} names it in errors. */
  public static Contents parse(String src, byte[] bytes) {
    return new Reader(src, bytes).adapter();
  }

  private static GraftException fail(String src, String message) {
    return new GraftException(RuntimeErrorCode.ONNX_ADAPTER, src + ": " + message);
  }

  /** A checked view of one buffer: every read is bounds- and alignment-checked first. */
  private static final class Reader {
    private final String src;
    private final byte[] bytes;
    private final ByteBuffer buf;

    Reader(String src, byte[] bytes) {
      this.src = src;
      this.bytes = bytes;
      this.buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** A checked parameter whose payload is not copied yet. */
    private record Pending(String name, DataType type, long[] dims, int dataPos, int dataLen) {}

    Contents adapter() {
      if (bytes.length < 12) {
        throw fail(src, "is " + bytes.length + " bytes, too short for an .onnx_adapter file");
      }
      byte[] id = Arrays.copyOfRange(bytes, 4, 8);
      if (!Arrays.equals(id, IDENTIFIER)) {
        throw fail(src, "has file identifier " + printable(id) + ", expected \"TORT\" (not an .onnx_adapter file)");
      }
      long root = offset(0, "the root offset");
      Table adapter = table(root, "the Adapter table");
      int version = adapter.scalar(0, "format_version");
      if (version != FORMAT_VERSION) {
        throw fail(src, "has format_version " + version + ", expected " + FORMAT_VERSION);
      }
      int adapterVersion = adapter.scalar(1, "adapter_version");
      int modelVersion = adapter.scalar(2, "model_version");
      long vec = adapter.reference(3, "parameters");
      List<Pending> pending = new ArrayList<>();
      if (vec >= 0) {
        long count = vectorLength(vec, 4, "parameters");
        Set<String> names = new HashSet<>();
        long payload = 0;
        for (long i = 0; i < count; i++) {
          long slot = vec + 4 + 4 * i;
          Pending p = parameter(table(offset(slot, "parameters[" + i + "]"), "parameters[" + i + "]"), i);
          if (!names.add(p.name())) {
            throw fail(src, "has two parameters named '" + p.name() + "'");
          }
          payload += p.dataLen();
          if (payload > bytes.length) {
            throw fail(src, "has parameters whose raw_data add up to more bytes than the file holds ("
                + bytes.length + "): its tables overlap");
          }
          pending.add(p);
        }
      }
      List<Parameter> params = new ArrayList<>();
      for (Pending p : pending) {
        params.add(new Parameter(p.name(), p.type(), p.dims(),
            Arrays.copyOfRange(bytes, p.dataPos(), p.dataPos() + p.dataLen())));
      }
      return new Contents(adapterVersion, modelVersion, params);
    }

    private Pending parameter(Table t, long index) {
      String what = "parameters[" + index + "]";
      long namePos = t.reference(0, what + ".name");
      if (namePos < 0) {
        throw fail(src, what + " has no name");
      }
      String name = string(namePos, what + ".name");
      if (name.isEmpty()) {
        throw fail(src, what + " has an empty name");
      }
      what = "parameter '" + name + "'";
      long dimsPos = t.reference(1, what + " dims");
      if (dimsPos < 0) {
        throw fail(src, what + " has no dims");
      }
      long rank = vectorLength(dimsPos, 8, what + " dims");
      if (rank > MAX_RANK) {
        throw fail(src, what + " has " + rank + " dims, at most " + MAX_RANK + " are read");
      }
      long[] dims = new long[(int) rank];
      long elements = 1;
      for (int d = 0; d < rank; d++) {
        dims[d] = buf.getLong((int) (dimsPos + 4 + 8L * d));
        if (dims[d] < 0) {
          throw fail(src, what + " has a negative dimension in " + Arrays.toString(Arrays.copyOf(dims, d + 1)));
        }
        if (elements != -1) {
          try {
            elements = Math.multiplyExact(elements, dims[d]);
          } catch (ArithmeticException e) {
            elements = -1;
          }
        }
      }
      int code = t.scalar(2, what + " data_type");
      DataType type = DataType.of(code);
      if (type == null) {
        throw fail(src, what + " has data_type " + code + "; supported: FLOAT (1), FLOAT16 (10), BFLOAT16 (16)");
      }
      long needed = -1;
      if (elements >= 0) {
        try {
          needed = Math.multiplyExact(elements, (long) type.size());
        } catch (ArithmeticException e) {
          needed = -1;
        }
      }
      if (needed < 0) {
        throw fail(src, what + " has dims " + Arrays.toString(dims) + " whose element count overflows a 64-bit integer");
      }
      long dataVec = t.reference(3, what + " raw_data");
      if (dataVec < 0) {
        throw fail(src, what + " has no raw_data");
      }
      long len = vectorLength(dataVec, 1, what + " raw_data");
      if (len != needed) {
        throw fail(src, what + " " + type + Arrays.toString(dims) + " needs " + needed + " bytes of raw_data, the file"
            + " gives " + len);
      }
      return new Pending(name, type, dims, (int) (dataVec + 4), (int) len);
    }

    /** A table at {@code pos}: its vtable checked to lie in the buffer. */
    private Table table(long pos, String what) {
      require(pos, 4, 4, what);
      long vt = pos - buf.getInt((int) pos);
      if (vt < 0 || vt + 4 > bytes.length || (vt & 1) != 0) {
        throw fail(src, what + " at " + pos + " has its vtable at " + vt + ", outside the file of " + bytes.length
            + " bytes (or misaligned)");
      }
      int vtSize = Short.toUnsignedInt(buf.getShort((int) vt));
      int tableSize = Short.toUnsignedInt(buf.getShort((int) vt + 2));
      if (vtSize < 4 || (vtSize & 1) != 0 || vt + vtSize > bytes.length) {
        throw fail(src, what + " has a vtable of " + vtSize + " bytes at " + vt + ", which does not fit the file of "
            + bytes.length + " bytes");
      }
      if (tableSize < 4 || pos + tableSize > bytes.length) {
        throw fail(src, what + " at " + pos + " claims " + tableSize + " bytes, past the end of the file ("
            + bytes.length + " bytes)");
      }
      return new Table(pos, (int) vt, vtSize, tableSize, what);
    }

    /** One table: fields by index, each checked to lie in the table. */
    private final class Table {
      private final long pos;
      private final int vt;
      private final int vtSize;
      private final int size;
      private final String what;

      Table(long pos, int vt, int vtSize, int size, String what) {
        this.pos = pos;
        this.vt = vt;
        this.vtSize = vtSize;
        this.size = size;
        this.what = what;
      }

      /** The absolute position of 4-byte field {@code index}, or -1 when absent. */
      private long field(int index, String name) {
        int entry = 4 + 2 * index;
        if (entry + 2 > vtSize) {
          return -1;
        }
        int off = Short.toUnsignedInt(buf.getShort(vt + entry));
        if (off == 0) {
          return -1;
        }
        if (off < 4 || off + 4 > size) {
          throw fail(src, what + " has field " + name + " at offset " + off + ", outside its " + size + " bytes");
        }
        long at = pos + off;
        require(at, 4, 4, name);
        return at;
      }

      /** A 4-byte scalar field (0 when absent, FlatBuffers' default). */
      int scalar(int index, String name) {
        long at = field(index, name);
        return at < 0 ? 0 : buf.getInt((int) at);
      }

      /** The target of an offset field, or -1 when absent. */
      long reference(int index, String name) {
        long at = field(index, name);
        return at < 0 ? -1 : offset(at, name);
      }
    }

    /** The target of the unsigned offset stored at {@code at}, checked to be a 4-aligned place in the buffer. */
    private long offset(long at, String what) {
      require(at, 4, 4, what);
      long target = at + Integer.toUnsignedLong(buf.getInt((int) at));
      if (target + 4 > bytes.length) {
        throw fail(src, what + " at " + at + " points to " + target + ", past the end of the file (" + bytes.length
            + " bytes)");
      }
      return target;
    }

    /** The length of a vector at {@code pos} of {@code elementSize}-byte elements, which must fit the buffer. */
    private long vectorLength(long pos, int elementSize, String what) {
      require(pos, 4, 4, what);
      long len = Integer.toUnsignedLong(buf.getInt((int) pos));
      if (pos + 4 + len * elementSize > bytes.length) {
        throw fail(src, what + " at " + pos + " claims " + len + " elements of " + elementSize + " bytes, past the end"
            + " of the file (" + bytes.length + " bytes)");
      }
      return len;
    }

    /** A NUL-terminated UTF-8 string at {@code pos}. */
    private String string(long pos, String what) {
      long len = vectorLength(pos, 1, what);
      if (pos + 4 + len + 1 > bytes.length || bytes[(int) (pos + 4 + len)] != 0) {
        throw fail(src, what + " at " + pos + " is not NUL-terminated inside the file");
      }
      try {
        CharBuffer chars = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT)
            .onUnmappableCharacter(CodingErrorAction.REPORT)
            .decode(ByteBuffer.wrap(bytes, (int) pos + 4, (int) len));
        return chars.toString();
      } catch (CharacterCodingException e) {
        throw fail(src, what + " at " + pos + " is not UTF-8");
      }
    }

    private void require(long pos, int size, int alignment, String what) {
      if (pos < 0 || pos + size > bytes.length) {
        throw fail(src, what + " at " + pos + " lies outside the file (" + bytes.length + " bytes)");
      }
      if (pos % alignment != 0) {
        throw fail(src, what + " at " + pos + " is not " + alignment + "-byte aligned");
      }
    }

    private static String printable(byte[] id) {
      StringBuilder s = new StringBuilder("\"");
      for (byte c : id) {
        s.append(c >= 0x20 && c < 0x7f ? String.valueOf((char) c) : String.format("\\x%02x", c & 0xff));
      }
      return s.append('"').toString();
    }
  }
}
