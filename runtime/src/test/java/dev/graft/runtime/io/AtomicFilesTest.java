package dev.graft.runtime.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.graft.runtime.GraftException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AtomicFilesTest {
  @TempDir Path dir;

  @Test
  void failedWriteLeavesThePreviousFileIntactAndNoTemporaryFiles() throws Exception {
    Path target = dir.resolve("adapter_model.safetensors");
    AtomicFiles.write(target, new byte[] {1, 2, 3});
    GraftException e =
        assertThrows(
            GraftException.class,
            () ->
                AtomicFiles.write(
                    target,
                    out -> {
                      out.write(new byte[] {9, 9, 9, 9, 9});
                      throw new IOException("disk full (simulated)");
                    }));
    assertEquals(true, e.getMessage().contains("disk full (simulated)"));
    assertArrayEquals(new byte[] {1, 2, 3}, Files.readAllBytes(target));
    try (Stream<Path> files = Files.list(dir)) {
      assertEquals(List.of(target), files.toList());
    }
    AtomicFiles.write(target, new byte[] {4});
    assertArrayEquals(new byte[] {4}, Files.readAllBytes(target));
  }

  @Test
  void finding4_temporaryFilesACrashLeftAreRemovedByTheNextWrite() throws Exception {
    Path target = dir.resolve("run.ckpt.safetensors");
    AtomicFiles.write(target, new byte[] {1});
    Path leftover = Files.write(dir.resolve(".run.ckpt.safetensors.graft-tmp-crashed"), new byte[] {7, 7});
    Path unrelated = Files.write(dir.resolve(".other.graft-tmp-x"), new byte[] {8});
    AtomicFiles.write(target, new byte[] {2});
    assertArrayEquals(new byte[] {2}, Files.readAllBytes(target));
    assertEquals(false, Files.exists(leftover));
    assertEquals(true, Files.exists(unrelated), "another target's temporaries are not touched");
  }
}
