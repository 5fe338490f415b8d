package dev.graft.processor.validate;

import com.google.protobuf.InvalidProtocolBufferException;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.spec.GraftSpec;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.annotation.processing.Filer;
import javax.tools.FileObject;
import javax.tools.StandardLocation;
import org.jspecify.annotations.Nullable;

/**
 * Finds and reads host models at compile time, in order: the name as a file path (absolute, or
 * relative to javac's working directory), {@code <graft.hostDir>/<name>}, then a class-path
 * resource. Each host is read once per processing run, however many declarations name it
 * (the real host is 90 MB).
 */
public final class HostResolver {
  /** Processor option naming a directory to search for host files. */
  public static final String HOST_DIR_OPTION = "graft.hostDir";

  private final Filer filer;
  private final @Nullable String hostDir;
  private final Map<String, Lookup> cache = new HashMap<>();

  public HostResolver(Filer filer, @Nullable String hostDir) {
    this.filer = filer;
    this.hostDir = hostDir == null || hostDir.isBlank() ? null : hostDir;
  }

  /** The outcome of looking up a host: the model, or the reason there is none. */
  public sealed interface Lookup {}

  public record Found(HostModel host) implements Lookup {}

  public record NotFound(List<String> lookedIn) implements Lookup {}

  public record Unreadable(String reason) implements Lookup {}

  /** The host of {@code spec}, or the diagnostic to report on its {@code host} value. */
  public Result resolve(GraftSpec spec) {
    Lookup lookup = cache.computeIfAbsent(spec.host(), this::lookup);
    if (lookup instanceof Found f) {
      return new Result(f.host(), null);
    }
    Diagnostic d = lookup instanceof NotFound nf
        ? Diagnostic.of(ErrorCode.HOST_NOT_FOUND, spec.source(), "host", quote(spec.host()), String.join(", ", nf.lookedIn()))
        : Diagnostic.of(ErrorCode.HOST_UNREADABLE, spec.source(), "host", quote(spec.host()), ((Unreadable) lookup).reason());
    return new Result(null, d);
  }

  /** Exactly one of host and error is present. */
  public record Result(@Nullable HostModel host, @Nullable Diagnostic error) {}

  private Lookup lookup(String name) {
    List<String> looked = new ArrayList<>();
    Path asGiven = path(name);
    if (asGiven != null) {
      looked.add("file " + asGiven.toAbsolutePath());
      if (Files.isRegularFile(asGiven)) {
        return readFile(asGiven, name);
      }
    }
    if (hostDir != null) {
      Path dir = path(hostDir);
      Path inDir = dir == null ? null : path(dir, name);
      if (inDir != null) {
        looked.add(HOST_DIR_OPTION + " file " + inDir.toAbsolutePath());
        if (Files.isRegularFile(inDir)) {
          return readFile(inDir, name);
        }
      }
    } else {
      looked.add("no -A" + HOST_DIR_OPTION + " directory (not set)");
    }
    looked.add("class path resource " + name);
    FileObject resource;
    try {
      resource = filer.getResource(StandardLocation.CLASS_PATH, "", name);
    } catch (IllegalArgumentException | FileNotFoundException | NoSuchFileException e) {
      return new NotFound(looked);
    } catch (IOException e) {
      return new Unreadable(String.valueOf(e));
    }
    try (InputStream in = resource.openInputStream()) {
      return read(in, name);
    } catch (FileNotFoundException | NoSuchFileException e) {
      return new NotFound(looked);
    } catch (IOException e) {
      return new Unreadable(String.valueOf(e));
    }
  }

  private static Lookup readFile(Path file, String name) {
    try (InputStream in = Files.newInputStream(file)) {
      Lookup found = read(in, name);
      return found instanceof Found f ? new Found(f.host().inFolder(file.toAbsolutePath().getParent())) : found;
    } catch (IOException e) {
      return new Unreadable(String.valueOf(e));
    }
  }

  private static Lookup read(InputStream in, String name) {
    try {
      return new Found(HostModel.read(in, name));
    } catch (UncheckedIOException e) {
      IOException cause = e.getCause();
      return new Unreadable(cause instanceof InvalidProtocolBufferException
          ? "not an ONNX model (" + cause.getMessage() + ")"
          : String.valueOf(cause));
    } catch (RuntimeException e) {
      return new Unreadable(String.valueOf(e));
    }
  }

  private static @Nullable Path path(String name) {
    try {
      return Path.of(name);
    } catch (InvalidPathException e) {
      return null;
    }
  }

  private static @Nullable Path path(Path dir, String name) {
    try {
      return dir.resolve(name);
    } catch (InvalidPathException e) {
      return null;
    }
  }

  private static String quote(String s) {
    return "'" + s + "'";
  }
}
