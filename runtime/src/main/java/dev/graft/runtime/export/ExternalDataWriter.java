package dev.graft.runtime.export;

import com.google.protobuf.ByteString;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.function.LongConsumer;

/**
 * Writes tensors one after another into an ONNX external data file, each at an offset aligned to
 * {@value #ALIGNMENT} bytes (zeros between), and returns each tensor's declaration: name, type,
 * dims and {@code external_data} {@code location} (relative, the file's name), {@code offset},
 * {@code length}. Offsets and lengths are {@code long}s, so a file over 2 GB works: the weights
 * never pass through a protobuf message.
 */
public final class ExternalDataWriter {
  /** Offsets are multiples of this (the page-friendly alignment ONNX Runtime's own writer uses). */
  public static final int ALIGNMENT = 64;

  /** Writes a tensor's raw little-endian bytes, exactly as many as declared, to a channel. */
  @FunctionalInterface
  public interface TensorBytes {
    void writeTo(WritableByteChannel channel) throws IOException;
  }

  private static final ByteBuffer ZEROS = ByteBuffer.allocate(ALIGNMENT);

  private final WritableByteChannel channel;
  private final String location;
  private final LongConsumer progress;
  private long position;

  /**
   * @param channel where the file's bytes go, from its start
   * @param location the file's name as the model refers to it (relative to the model's folder)
   * @param progress told the total bytes written after each tensor
   */
  public ExternalDataWriter(WritableByteChannel channel, String location, LongConsumer progress) {
    this.channel = channel;
    this.location = location;
    this.progress = progress;
  }

  /** The offset of the next tensor written after {@code position}: the next multiple of {@value #ALIGNMENT}. */
  public static long aligned(long position) {
    if (position < 0 || position > Long.MAX_VALUE - ALIGNMENT) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "external data offset out of range: " + position);
    }
    return (position + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
  }

  /** Bytes written so far. */
  public long position() {
    return position;
  }

  /**
   * Writes {@code length} bytes of tensor {@code name} from {@code bytes} at the next aligned
   * offset; returns its declaration.
   */
  public TensorProto write(String name, int dataType, long[] dims, long length, TensorBytes bytes) throws IOException {
    long offset = aligned(position);
    ZEROS.clear().limit((int) (offset - position));
    while (ZEROS.hasRemaining()) {
      channel.write(ZEROS);
    }
    CountingChannel counted = new CountingChannel(channel);
    bytes.writeTo(counted);
    if (counted.count != length) {
      throw new GraftException(RuntimeErrorCode.TENSOR_MISMATCH, "tensor '" + name + "': expected " + length
          + " bytes of external data, given " + counted.count);
    }
    position = offset + length;
    progress.accept(position);
    TensorProto.Builder t = TensorProto.newBuilder().setName(name).setDataType(dataType)
        .setDataLocation(TensorProto.DataLocation.EXTERNAL)
        .addExternalData(entry("location", location))
        .addExternalData(entry("offset", Long.toString(offset)))
        .addExternalData(entry("length", Long.toString(length)));
    for (long d : dims) {
      t.addDims(d);
    }
    return t.build();
  }

  /** Writes a tensor whose bytes are in {@code data} (from its position to its limit). */
  public TensorProto write(String name, int dataType, long[] dims, ByteBuffer data) throws IOException {
    ByteBuffer view = data.duplicate();
    return write(name, dataType, dims, view.remaining(), ch -> {
      while (view.hasRemaining()) {
        ch.write(view);
      }
    });
  }

  /** Writes a tensor held in a {@link ByteString}. */
  public TensorProto write(String name, int dataType, long[] dims, ByteString data) throws IOException {
    return write(name, dataType, dims, data.asReadOnlyByteBuffer());
  }

  private static StringStringEntryProto entry(String key, String value) {
    return StringStringEntryProto.newBuilder().setKey(key).setValue(value).build();
  }

  /** Counts what passes through. */
  private static final class CountingChannel implements WritableByteChannel {
    private final WritableByteChannel out;
    private long count;

    CountingChannel(WritableByteChannel out) {
      this.out = out;
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = out.write(src);
      count += n;
      return n;
    }

    @Override
    public boolean isOpen() {
      return out.isOpen();
    }

    @Override
    public void close() {
      // the writer's channel stays open
    }
  }
}
