package dev.graft.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.TrainingStateSnapshot;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fuzzes {@link AdapterModel#loadOnnxAdapter} (and so the {@code .onnx_adapter} reader) on the
 * tiny LoRA graft with arbitrary files. Oracle: the file loads, or it is refused with a coded
 * {@link GraftException} and the model's parameters, AdamW moments and step count are unchanged;
 * no other exception, no OutOfMemoryError at -Xmx1g. Corpus: {@code
 * OnnxAdapterFuzzTestInputs/load/} (the graft's own file in float32 and float16, written by {@link
 * FuzzSeeds}).
 */
public final class OnnxAdapterFuzzTest {
  private static final Path FILE = FuzzFixtures.scratch("onnx-adapter").resolve("fuzz.onnx_adapter");

  @FuzzTest(maxDuration = "5s")
  void load(byte[] input) {
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
    AdapterModel model = FuzzFixtures.model();
    TrainingStateSnapshot before = TrainingStateSnapshot.of(model);
    try {
      model.loadOnnxAdapter(FILE);
    } catch (GraftException refused) {
      FuzzFixtures.checkRefusal(refused, model, before);
    }
  }
}
