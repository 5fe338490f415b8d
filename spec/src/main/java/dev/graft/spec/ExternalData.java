package dev.graft.spec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;

/**
 * Where an ONNX initializer's external data may be, as ONNX Runtime allows it: a relative path
 * inside the model's folder, reached without a symbolic link leading out of it. One rule for the
 * compiler (which checks a host before compiling it) and the runtime (which reads the data).
 */
public final class ExternalData {
  private ExternalData() {}

  /** Where a location leads, once symbolic links are followed. */
  public enum Place {
    /** A regular file inside the folder. */
    INSIDE,
    /** Outside the folder, the folder itself, or not a regular file. */
    OUTSIDE,
    /**
     * Missing behind a symbolic link: as refused as one that leads out (whether its target exists
     * is not said).
     */
    DANGLING_LINK,
    /** No such file (and no symbolic link on the way to say more). */
    MISSING
  }

  /**
   * Where {@code relative} (from {@link #relativeLocation}) leads from {@code dir}, and the file's
   * real path when it is {@link Place#INSIDE} ({@code null} otherwise).
   */
  public record Resolved(Place place, Path file) {}

  /**
   * {@code location} normalized as a relative path with {@code /} separators, or {@code null} when
   * ONNX Runtime would not accept it: empty, absolute (a leading separator, a drive or a scheme),
   * or escaping its folder with {@code ..}.
   */
  public static String relativeLocation(String location) {
    if (location.isEmpty() || location.startsWith("/") || location.startsWith("\\") || location.indexOf(':') >= 0
        || location.indexOf('\0') >= 0) {
      return null;
    }
    Deque<String> segments = new ArrayDeque<>();
    for (String s : location.split("[/\\\\]")) {
      if (s.isEmpty() || s.equals(".")) {
        continue;
      }
      if (s.equals("..")) {
        if (segments.isEmpty()) {
          return null;
        }
        segments.removeLast();
      } else {
        segments.addLast(s);
      }
    }
    return segments.isEmpty() ? null : String.join("/", segments);
  }

  /** Resolves {@code relative} inside {@code dir}, comparing real paths (symbolic links followed). */
  public static Resolved resolve(Path dir, String relative) throws IOException {
    Path realDir = dir.toRealPath();
    Path real;
    try {
      real = dir.resolve(relative).toRealPath();
    } catch (NoSuchFileException e) {
      return new Resolved(throughLink(dir, relative) ? Place.DANGLING_LINK : Place.MISSING, null);
    }
    if (!real.startsWith(realDir) || real.equals(realDir) || !Files.isRegularFile(real)) {
      return new Resolved(Place.OUTSIDE, null);
    }
    return new Resolved(Place.INSIDE, real);
  }

  /** Whether any existing part of {@code dir}/{@code relative} below {@code dir} is a symbolic link. */
  private static boolean throughLink(Path dir, String relative) {
    Path p = dir;
    for (String s : relative.split("/")) {
      p = p.resolve(s);
      if (Files.isSymbolicLink(p)) {
        return true;
      }
    }
    return false;
  }
}
