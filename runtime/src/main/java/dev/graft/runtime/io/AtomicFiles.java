package dev.graft.runtime.io;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.SecureRandom;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Saves files and whole folders so that readers see either the previous content or the complete
 * new one, never a mix, even when the process is killed mid-save. Files are created with the
 * default permissions (the umask decides, typically 0644 for files and 0755 for folders).
 *
 * <h2>A single file ({@link #write(Path, Writer)})</h2>
 *
 * The bytes go to a sibling temporary file {@code .<name>.graft-tmp-<random>}, are forced to
 * disk, and the temporary file is renamed over the target ({@code ATOMIC_MOVE}); the parent
 * folder is then forced so that the rename is durable. A failure removes the temporary file; a
 * crash may leave it, and the next write of the same target removes it.
 *
 * <h2>A whole folder ({@link #writeFolder})</h2>
 *
 * A folder {@code <parent>/<name>} cannot be replaced by one rename when it exists and is not
 * empty, so a save swaps it in with two renames and a sibling backup:
 *
 * <ol>
 *   <li><b>Recover</b> (see below) from any earlier crash, and delete leftover temporary folders
 *       {@code .<name>.graft-tmp-<random>}.
 *   <li><b>Write</b> a sibling temporary folder {@code .<name>.graft-tmp-<random>}: every file is
 *       written and forced to disk, entries of the current folder that the save does not write
 *       (a README, say) are hard-linked (or copied) into it, then the folder itself is forced.
 *   <li><b>Swap</b>: rename {@code <name>} to the backup {@code .<name>.graft-backup}, force the
 *       parent, rename the temporary folder to {@code <name>}, force the parent.
 *   <li><b>Clean</b>: delete the backup.
 * </ol>
 *
 * A failure before the swap deletes the temporary folder and leaves {@code <name>} as it was.
 * At every instant either {@code <name>} or the backup is a complete folder: killed between the
 * two renames, {@code <name>} is missing and the backup holds the previous folder. <b>Recovery</b>
 * (at the start of every save) therefore renames the backup back to {@code <name>} when {@code
 * <name>} is missing, and deletes it when {@code <name>} exists (the kill came after the second
 * rename); a load ({@link #readable}) reads the backup when {@code <name>} is missing, changing
 * nothing on disk. Saves of one folder from two processes at the same time are not supported.
 */
public final class AtomicFiles {
  /** Writes the content of a file to a stream. */
  @FunctionalInterface
  public interface Writer {
    void write(OutputStream out) throws IOException;
  }

  private static final String TMP = ".graft-tmp-";
  private static final String BACKUP = ".graft-backup";
  private static final SecureRandom RANDOM = new SecureRandom();

  private AtomicFiles() {}

  /** Atomically replaces {@code target} with what {@code writer} writes. */
  public static void write(Path target, Writer writer) {
    Path abs = target.toAbsolutePath().normalize();
    Path dir = abs.getParent();
    Path tmp = null;
    try {
      Files.createDirectories(dir);
      deleteTemporaries(abs);
      tmp = temporary(abs);
      writeFile(tmp, writer);
      move(tmp, abs, true);
      tmp = null;
      forceFolder(dir);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot write " + abs + ": " + e, e);
    } finally {
      deleteQuietly(tmp);
    }
  }

  /** Atomically replaces {@code target} with {@code bytes}. */
  public static void write(Path target, byte[] bytes) {
    write(target, out -> out.write(bytes));
  }

  /**
   * Replaces folder {@code target} as a whole by one holding {@code files} (name to content, plain
   * names), keeping the current folder's other entries; see the class comment for the protocol.
   */
  public static void writeFolder(Path target, Map<String, Writer> files) {
    Path abs = target.toAbsolutePath().normalize();
    Path parent = abs.getParent();
    if (parent == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "cannot replace the root folder " + abs);
    }
    for (String name : files.keySet()) {
      if (name.isEmpty() || name.contains("/") || name.contains("\\") || name.startsWith(".")) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "not a plain file name: '" + name + "'");
      }
    }
    Path tmp = null;
    try {
      Files.createDirectories(parent);
      recover(abs);
      if (Files.exists(abs, LinkOption.NOFOLLOW_LINKS) && !Files.isDirectory(abs)) {
        throw new GraftException(RuntimeErrorCode.IO, "cannot save into " + abs + ": it is not a folder");
      }
      tmp = temporary(abs);
      Files.delete(tmp);
      Files.createDirectory(tmp);
      for (Map.Entry<String, Writer> f : files.entrySet()) {
        writeFile(tmp.resolve(f.getKey()), f.getValue());
      }
      if (Files.isDirectory(abs)) {
        copyOthers(abs, tmp, files.keySet());
      }
      forceFolder(tmp);
      Path backup = backup(abs);
      boolean replacing = Files.exists(abs, LinkOption.NOFOLLOW_LINKS);
      if (replacing) {
        move(abs, backup, false);
        forceFolder(parent);
      }
      move(tmp, abs, false);
      tmp = null;
      forceFolder(parent);
      if (replacing) {
        deleteTree(backup);
      }
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot save " + abs + ": " + e, e);
    } finally {
      if (tmp != null) {
        try {
          deleteTree(tmp);
        } catch (IOException ignored) {
          // the save already failed; that is the error to report
        }
      }
    }
  }

  /**
   * The folder to read for {@code target}: {@code target} itself, or its backup when a save was
   * killed between its two renames (then {@code target} is missing and the backup is the
   * previous, complete folder). Changes nothing on disk.
   */
  public static Path readable(Path target) {
    Path abs = target.toAbsolutePath().normalize();
    if (!Files.exists(abs) && abs.getParent() != null && Files.isDirectory(backup(abs))) {
      return backup(abs);
    }
    return target;
  }

  /** Completes or undoes a folder swap that a crash interrupted, and deletes leftover temporaries. */
  static void recover(Path abs) throws IOException {
    Path backup = backup(abs);
    if (Files.exists(backup, LinkOption.NOFOLLOW_LINKS)) {
      if (Files.exists(abs, LinkOption.NOFOLLOW_LINKS)) {
        deleteTree(backup);
      } else {
        move(backup, abs, false);
        forceFolder(abs.getParent());
      }
    }
    deleteTemporaries(abs);
  }

  private static Path backup(Path abs) {
    return abs.resolveSibling("." + abs.getFileName() + BACKUP);
  }

  /** A new, empty sibling file {@code .<name>.graft-tmp-<random>}, with default permissions. */
  private static Path temporary(Path abs) throws IOException {
    for (int attempt = 0; ; attempt++) {
      Path p = abs.resolveSibling("." + abs.getFileName() + TMP + Long.toUnsignedString(RANDOM.nextLong(), 36));
      try {
        Files.newByteChannel(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE).close();
        return p;
      } catch (java.nio.file.FileAlreadyExistsException e) {
        if (attempt > 10) {
          throw e;
        }
      }
    }
  }

  private static void deleteTemporaries(Path abs) throws IOException {
    String prefix = "." + abs.getFileName() + TMP;
    try (DirectoryStream<Path> s = Files.newDirectoryStream(abs.getParent(), e -> e.getFileName().toString().startsWith(prefix))) {
      for (Path p : s) {
        deleteTree(p);
      }
    }
  }

  private static void writeFile(Path file, Writer writer) throws IOException {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING);
        OutputStream out = Channels.newOutputStream(ch)) {
      writer.write(out);
      out.flush();
      ch.force(true);
    }
  }

  private static void copyOthers(Path from, Path to, java.util.Set<String> written) throws IOException {
    Map<Path, Path> others = new LinkedHashMap<>();
    try (DirectoryStream<Path> s = Files.newDirectoryStream(from)) {
      for (Path p : s) {
        if (!written.contains(p.getFileName().toString())) {
          others.put(p, to.resolve(p.getFileName().toString()));
        }
      }
    }
    for (Map.Entry<Path, Path> e : others.entrySet()) {
      Path src = e.getKey();
      Path dst = e.getValue();
      Files.walkFileTree(src, new SimpleFileVisitor<>() {
        @Override
        public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes a) throws IOException {
          Files.createDirectories(dst.resolve(src.relativize(d).toString()));
          return FileVisitResult.CONTINUE;
        }

        @Override
        public FileVisitResult visitFile(Path f, BasicFileAttributes a) throws IOException {
          Path out = src.equals(f) ? dst : dst.resolve(src.relativize(f).toString());
          if (!a.isRegularFile() || !link(out, f)) {
            Files.copy(f, out, StandardCopyOption.COPY_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
          }
          return FileVisitResult.CONTINUE;
        }
      });
    }
  }

  /** Hard-links {@code to} as {@code link} (no copy of a large file); false where the file system cannot. */
  private static boolean link(Path link, Path to) {
    try {
      Files.createLink(link, to);
      return true;
    } catch (IOException | UnsupportedOperationException e) {
      return false;
    }
  }

  private static void move(Path from, Path to, boolean replace) throws IOException {
    try {
      if (replace) {
        Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      } else {
        Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
      }
    } catch (AtomicMoveNotSupportedException e) {
      throw new GraftException(RuntimeErrorCode.IO,
          "the file system of " + to.getParent() + " cannot rename atomically: " + e.getMessage(), e);
    }
  }

  /** Forces a folder's entries to disk; a no-op where folders cannot be opened (Windows). */
  private static void forceFolder(Path dir) {
    try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
      ch.force(true);
    } catch (IOException | UnsupportedOperationException e) {
      if (!System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("windows")) {
        throw new GraftException(RuntimeErrorCode.IO, "cannot flush folder " + dir + ": " + e, e);
      }
    }
  }

  static void deleteTree(Path root) throws IOException {
    if (!Files.exists(root, LinkOption.NOFOLLOW_LINKS)) {
      return;
    }
    Files.walkFileTree(root, new SimpleFileVisitor<>() {
      @Override
      public FileVisitResult visitFile(Path f, BasicFileAttributes a) throws IOException {
        Files.deleteIfExists(f);
        return FileVisitResult.CONTINUE;
      }

      @Override
      public FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
        if (e != null && !(e instanceof NoSuchFileException)) {
          throw e;
        }
        Files.deleteIfExists(d);
        return FileVisitResult.CONTINUE;
      }
    });
  }

  private static void deleteQuietly(Path p) {
    if (p != null) {
      try {
        Files.deleteIfExists(p);
      } catch (IOException ignored) {
        // the write already failed; that is the error to report
      }
    }
  }
}
