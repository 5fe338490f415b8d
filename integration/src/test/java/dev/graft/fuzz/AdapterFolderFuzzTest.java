package dev.graft.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.TrainingStateSnapshot;
import dev.graft.runtime.io.PeftAdapters;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Fuzzes {@link AdapterModel#loadAdapter(Path)} (PEFT adapter folders: {@code
 * adapter_config.json} and {@code adapter_model.safetensors}) on the tiny LoRA graft. An input is
 * a folder framed as {@link #frame}: a 4-byte big-endian length, that many bytes of config, the
 * rest the weights file. Oracle: the folder loads, or it is refused with a coded {@link
 * GraftException} and the model's training state is unchanged; nothing else. Corpus: {@code
 * AdapterFolderFuzzTestInputs/load/} (the graft's own saved folder, written by {@link FuzzSeeds}).
 */
public final class AdapterFolderFuzzTest {
  private static final Path DIR = FuzzFixtures.scratch("adapter");

  @FuzzTest(maxDuration = "5s")
  void load(byte[] input) {
    check(input);
  }

  public static void fuzzerTestOneInput(byte[] input) {
    check(input);
  }

  /** The fuzz input of a folder with these two files. */
  static byte[] frame(byte[] config, byte[] weights) {
    return ByteBuffer.allocate(4 + config.length + weights.length).putInt(config.length).put(config).put(weights)
        .array();
  }

  static void check(byte[] input) {
    int configLength = input.length < 4 ? 0 : (int) Math.min(ByteBuffer.wrap(input).getInt() & 0xffffffffL,
        input.length - 4);
    int start = Math.min(4, input.length);
    byte[] config = Arrays.copyOfRange(input, start, start + configLength);
    byte[] weights = Arrays.copyOfRange(input, start + configLength, input.length);
    try {
      Files.write(DIR.resolve(PeftAdapters.CONFIG_FILE), config);
      Files.write(DIR.resolve(PeftAdapters.WEIGHTS_FILE), weights);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    AdapterModel model = FuzzFixtures.model();
    TrainingStateSnapshot before = TrainingStateSnapshot.of(model);
    try {
      model.loadAdapter(DIR);
    } catch (GraftException refused) {
      FuzzFixtures.checkRefusal(refused, model, before);
    }
  }
}
