package dev.graft.runtime.io;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.graft.runtime.GraftException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fuzzes {@link Safetensors#read} with arbitrary file contents. The oracle: a file either reads
 * or is refused with a coded {@link GraftException}; anything else (a raw runtime exception, an
 * OutOfMemoryError at -Xmx1g) is a finding. The regression corpus is in
 * {@code src/test/resources/dev/graft/runtime/io/SafetensorsFuzzTestInputs/read/}; it is
 * replayed by the fuzz execution of {@code verify}, which then fuzzes for a few seconds
 * ({@code JAZZER_FUZZ=1}). {@link #fuzzerTestOneInput} is the same target for Jazzer's
 * standalone driver (the {@code -Pfuzz} campaign).
 */
public final class SafetensorsFuzzTest {
  private static final Path FILE = tempFile();

  @FuzzTest(maxDuration = "5s")
  void read(byte[] input) {
    check(input);
  }

  public static void fuzzerTestOneInput(byte[] input) {
    check(input);
  }

  static void check(byte[] input) {
    try {
      Files.write(FILE, input);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try {
      Safetensors.Contents contents = Safetensors.read(FILE);
      // What reads must be usable: every tensor's values are there to decode.
      for (TensorData t : contents.tensors().values()) {
        if (t.dtype() == DType.F32 || t.dtype() == DType.F64) {
          t.toFloats();
        }
      }
    } catch (GraftException refused) {
      if (refused.getCode() == null || refused.getCode().isEmpty()) {
        throw new AssertionError("a refusal without a code", refused);
      }
    }
  }

  private static Path tempFile() {
    try {
      Path f = Files.createTempFile("graft-fuzz-", ".safetensors");
      f.toFile().deleteOnExit();
      return f;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
