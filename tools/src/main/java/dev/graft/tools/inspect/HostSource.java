package dev.graft.tools.inspect;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import org.jspecify.annotations.Nullable;

/**
 * Finds a host model by the name a user gives, as {@code @Graft(host = …)} names one: a file path
 * (absolute, or relative to the working directory), else a class-path resource
 * ({@code all-minilm-l6-v2.onnx} from its Maven jar). Failures are the compiler's GRAFT001 and
 * GRAFT002 errors.
 */
final class HostSource {
  private HostSource() {}

  /** The outcome of finding a host: the model, or the error that says where it was looked for or why it is unreadable. */
  sealed interface Lookup {}

  record Found(HostModel host) implements Lookup {}

  record Failed(Diagnostic error) implements Lookup {}

  /** Looks for {@code name} as a file, then as a resource of {@code loader}. */
  static Lookup find(String name, ClassLoader loader) {
    Path file = path(name);
    if (file != null && Files.isRegularFile(file)) {
      try (InputStream in = Files.newInputStream(file)) {
        return read(in, name);
      } catch (IOException e) {
        return unreadable(name, String.valueOf(e));
      }
    }
    String resource = name.startsWith("/") ? name.substring(1) : name;
    try (InputStream in = loader.getResourceAsStream(resource)) {
      if (in != null) {
        return read(in, name);
      }
    } catch (IOException e) {
      return unreadable(name, String.valueOf(e));
    }
    String lookedIn = (file == null ? "" : "file " + file.toAbsolutePath() + ", ") + "class path resource " + resource;
    return new Failed(Diagnostic.of(ErrorCode.HOST_NOT_FOUND, null, "host", "'" + name + "'", lookedIn));
  }

  private static Lookup read(InputStream in, String name) {
    try {
      return new Found(HostModel.read(in, name));
    } catch (UncheckedIOException e) {
      IOException cause = e.getCause();
      return unreadable(name, cause instanceof InvalidProtocolBufferException
          ? "not an ONNX model (" + cause.getMessage() + ")" : String.valueOf(cause));
    }
  }

  private static Failed unreadable(String name, String reason) {
    return new Failed(Diagnostic.of(ErrorCode.HOST_UNREADABLE, null, "host", "'" + name + "'", reason));
  }

  private static @Nullable Path path(String name) {
    try {
      return Path.of(name);
    } catch (InvalidPathException e) {
      return null;
    }
  }
}
