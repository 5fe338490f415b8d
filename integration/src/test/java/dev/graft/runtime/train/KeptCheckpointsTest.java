package dev.graft.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TinyGraphs;
import dev.graft.runtime.data.Example;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A kept-checkpoints folder's {@code index.json} is hostile input: every way it can be wrong is GRAFT-R140. */
class KeptCheckpointsTest {
  @TempDir Path dir;
  private Path folder;
  private String index;

  @BeforeEach
  void keep() throws Exception {
    folder = dir.resolve("kept");
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      train.add(TrainerTest.example(1 + i % 3, i % 2));
    }
    try (AdapterModel m = AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)))) {
      Trainer.builder().batchSize(4).epochs(2).learningRate(0.1f).progress(null)
          .listener(CheckpointKeeper.into(folder).keepLast(3).metric("acc", x -> 0.75).build()).build()
          .fit(m, train, List.of());
    }
    index = Files.readString(folder.resolve(KeptCheckpoints.INDEX), StandardCharsets.UTF_8);
    assertEquals(3, KeptCheckpoints.read(folder).checkpoints().size());
  }

  private void rejects(UnaryOperator<String> change, String expected) throws Exception {
    String changed = change.apply(index);
    assertTrue(!changed.equals(index), "the change changes the index: " + expected);
    Files.writeString(folder.resolve(KeptCheckpoints.INDEX), changed, StandardCharsets.UTF_8);
    GraftException e = assertThrows(GraftException.class, () -> KeptCheckpoints.read(folder));
    assertEquals(RuntimeErrorCode.CHECKPOINT_INDEX, e.getErrorCode(), e.getMessage());
    assertTrue(e.getMessage().startsWith("[GRAFT-R140]") && e.getMessage().contains(expected), e.getMessage());
    Files.writeString(folder.resolve(KeptCheckpoints.INDEX), index, StandardCharsets.UTF_8);
  }

  @Test
  void everyMalformedIndexIsGraftR140() throws Exception {
    rejects(s -> s.substring(0, s.length() / 2), "not valid JSON");
    rejects(s -> s.replace("\"train_loss\": ", "\"train_loss\": NaN, \"x\": "), "not valid JSON");
    rejects(s -> s.replace("graft-kept-checkpoints-1", "graft-kept-checkpoints-9"), "expected 'graft-kept-checkpoints-1'");
    rejects(s -> s.replace("\"step-00000003.safetensors\"", "\"../step-00000003.safetensors\""),
        "expected 'step-00000003.safetensors' for step 3");
    rejects(s -> s.replace("\"step\": 3", "\"step\": 2"), "expected steps increasing");
    rejects(s -> s.replace("\"step\": 4", "\"step\": 4.5"), "must be an integer");
    rejects(s -> s.replace("\"step\": 4", "\"step\": 1e999999999"), "must be an integer");
    rejects(s -> s.replace("\"keep\": 3", "\"keep\": 2"), "more than the 2 it keeps");
    rejects(s -> s.replace("\"keep\": 3", "\"keep\": 0"), "must be in [1, 10000]");
    rejects(s -> s.replace("\"metric\": \"acc\",", ""), "has a metric, but the index names none");
    rejects(s -> s.replaceFirst("\"metric\": 0\\.75", "\"metric\": \"high\""), "must be a number");
    rejects(s -> s.replaceFirst("\"train_loss\": [0-9.E-]+", "\"train_loss\": 1e400"), "must be a finite number");
    rejects(s -> s.replace("\"graft\": \"Tiny\",", ""), "has no field 'graft'");
    rejects(s -> "[" + s + "]", "is not a JSON object");
  }

  @Test
  void aListedFileThatIsMissingOrALinkIsGraftR140() throws Exception {
    Path file = folder.resolve("step-00000004.safetensors");
    Path moved = dir.resolve("elsewhere.safetensors");
    Files.move(file, moved);
    GraftException missing = assertThrows(GraftException.class, () -> KeptCheckpoints.read(folder));
    assertTrue(missing.getMessage().contains("missing or not a regular file"), missing.getMessage());
    Files.createSymbolicLink(file, moved);
    GraftException link = assertThrows(GraftException.class, () -> KeptCheckpoints.read(folder));
    assertEquals("GRAFT-R140", link.getCode());
  }

  @Test
  void anOversizedIndexIsRefusedBeforeItIsRead() throws Exception {
    Files.write(folder.resolve(KeptCheckpoints.INDEX), new byte[(int) KeptCheckpoints.MAX_INDEX_BYTES + 1]);
    GraftException e = assertThrows(GraftException.class, () -> KeptCheckpoints.read(folder));
    assertTrue(e.getMessage().contains("more than the " + KeptCheckpoints.MAX_INDEX_BYTES), e.getMessage());
  }
}
