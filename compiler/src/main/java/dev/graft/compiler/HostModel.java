package dev.graft.compiler;

import com.google.protobuf.CodedInputStream;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * A host ONNX model as read from disk or the class path.
 *
 * @param name the name the user gave (resource name or path), recorded in the manifest
 * @param sha256 hex SHA-256 of the file's bytes
 * @param folder the folder of the host file, where its external data files are (null for a host
 *     read from a stream or made in memory: then external data locations are checked as paths only)
 */
public record HostModel(String name, ModelProto model, String sha256, @Nullable Path folder) {

  public HostModel(String name, ModelProto model, String sha256) {
    this(name, model, sha256, null);
  }

  /** A host made in memory, with the SHA-256 of its serialized bytes (the file it is written to). */
  public static HostModel of(String name, ModelProto model) {
    return new HostModel(name, model, HexFormat.of().formatHex(newDigest().digest(model.toByteArray())));
  }

  /**
   * Reads a host model from a file.
   *
   * @throws GraftCompileException {@code GRAFT001} when there is no such file, {@code GRAFT002}
   *     when it cannot be read or is not an ONNX model
   */
  public static HostModel read(Path file) {
    try (InputStream in = Files.newInputStream(file)) {
      HostModel host = read(in, file.toString());
      Path dir = file.toAbsolutePath().getParent();
      return new HostModel(host.name(), host.model(), host.sha256(), dir);
    } catch (NoSuchFileException e) {
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.HOST_NOT_FOUND, null, "host",
          "'" + file + "'", "file " + file.toAbsolutePath())));
    } catch (IOException | UncheckedIOException e) {
      IOException cause = e instanceof UncheckedIOException u ? u.getCause() : (IOException) e;
      String reason = cause instanceof com.google.protobuf.InvalidProtocolBufferException
          ? "not an ONNX model (" + cause.getMessage() + ")"
          : String.valueOf(cause);
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.HOST_UNREADABLE, null, "host", "'" + file + "'", reason)));
    }
  }

  /**
   * Reads a host model from a stream (which this method does not close). Throws {@link
   * IOException} wrapped as {@link UncheckedIOException} for I/O failures, and {@link
   * com.google.protobuf.InvalidProtocolBufferException} (also an IOException) when the bytes
   * are not an ONNX model.
   */
  public static HostModel read(InputStream in, String name) {
    try {
      MessageDigest sha = newDigest();
      CodedInputStream coded = CodedInputStream.newInstance(new DigestInputStream(in, sha));
      coded.setSizeLimit(Integer.MAX_VALUE);
      coded.setRecursionLimit(1000);
      ModelProto model = ModelProto.parseFrom(coded);
      if (!model.hasGraph() || model.getGraph().getNodeCount() == 0) {
        throw new com.google.protobuf.InvalidProtocolBufferException("no graph with nodes");
      }
      return new HostModel(name, model, HexFormat.of().formatHex(sha.digest()));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * An int8 twin of this float host, its linear layers int8 as ONNX Runtime's dynamic quantization
   * writes them ({@link dev.graft.compiler.ir.Int8Quantizer}); the result names the layers it
   * quantized and those it left float, with why. Write {@code result.host().model()} to a file
   * named {@code name} to open the grafts compiled against it.
   */
  public dev.graft.compiler.ir.Int8Quantizer.Result quantizeInt8(String name) {
    return dev.graft.compiler.ir.Int8Quantizer.quantize(this, name);
  }

  /** The same host with its file's folder (for the processor, which reads files as streams). */
  public HostModel inFolder(@Nullable Path value) {
    return new HostModel(name, model, sha256, value);
  }

  private static MessageDigest newDigest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
