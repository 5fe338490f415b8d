package dev.graft.compiler;

import com.google.protobuf.CodedInputStream;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * A host ONNX model as read from disk or the class path.
 *
 * @param name the name the user gave (resource name or path), recorded in the manifest
 * @param sha256 hex SHA-256 of the file's bytes
 */
public record HostModel(String name, ModelProto model, String sha256) {

  /** Reads a host model from a file. */
  public static HostModel read(Path file) {
    try (InputStream in = Files.newInputStream(file)) {
      return read(in, file.toString());
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read host model " + file, e);
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
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
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
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
