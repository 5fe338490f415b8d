package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.data.Example;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainerTest;
import dev.graft.runtime.train.TrainingResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Training checkpoints on the tiny graph (its "optimizer" accumulates m += p, v += step, so state is visible). */
class CheckpointTest {
  @TempDir Path dir;

  private AdapterModel open() throws Exception {
    return AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)));
  }

  private static List<Example> data() {
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      train.add(TrainerTest.example(1 + i % 4, i % 2));
    }
    return train;
  }

  private static Trainer trainer(int epochs, Path checkpoint) {
    return trainer(epochs, checkpoint, LearningRate.linear(0.1f, 0.2));
  }

  private static Trainer trainer(int epochs, Path checkpoint, LearningRate rate) {
    return Trainer.builder().batchSize(4).epochs(epochs).learningRate(rate).seed(5)
        .checkpoint(checkpoint).progress(null).build();
  }

  @Test
  void resumedRunEndsExactlyWhereAnUninterruptedRunEnds() throws Exception {
    float[] p;
    float[] m;
    float[] v;
    try (AdapterModel straight = open()) {
      straight.setParameter("p", new float[] {1f, -2f});
      trainer(3, null).fit(straight, data(), List.of());
      p = straight.getParameter("p");
      m = straight.optimizerState("p", false);
      v = straight.optimizerState("p", true);
      assertEquals(9, straight.getStep());
    }
    Path ckpt = dir.resolve("run.ckpt.safetensors");
    try (AdapterModel first = open()) {
      first.setParameter("p", new float[] {1f, -2f});
      // The run dies in its second epoch (step 4 of 9), after the first epoch's checkpoint.
      LearningRate dying = (step, total) -> {
        if (step == 4) {
          throw new IllegalStateException("killed");
        }
        return LearningRate.linear(0.1f, 0.2).at(step, total);
      };
      assertThrows(IllegalStateException.class, () -> trainer(3, ckpt, dying).fit(first, data(), List.of()));
      assertTrue(Files.isRegularFile(ckpt));
    }
    try (AdapterModel resumed = open()) {
      // A fresh model: its parameters come from the checkpoint, not from here.
      TrainingResult r = trainer(3, ckpt).fit(resumed, data(), List.of());
      assertEquals(6, r.steps(), "epochs 2 and 3 only");
      assertEquals(List.of(2, 3), r.epochs().stream().map(TrainingResult.EpochResult::epoch).toList());
      assertEquals(9, resumed.getStep());
      assertArrayEquals(p, resumed.getParameter("p"), 0f);
      assertArrayEquals(m, resumed.optimizerState("p", false), 0f);
      assertArrayEquals(v, resumed.optimizerState("p", true), 0f);
    }
  }

  @Test
  void saveAndLoadRestoreParametersMomentsAndStep() throws Exception {
    Path file = dir.resolve("state.safetensors");
    float[] p;
    float[] m;
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {0.5f, 0.25f});
      trainer(1, null).fit(model, data(), List.of());
      model.saveCheckpoint(file);
      assertEquals(3, model.getStep());
      p = model.getParameter("p");
      m = model.optimizerState("p", false);
    }
    try (AdapterModel model = open()) {
      model.loadCheckpoint(file);
      assertEquals(3, model.getStep());
      assertArrayEquals(p, model.getParameter("p"), 0f);
      assertArrayEquals(m, model.optimizerState("p", false), 0f);
    }
  }

  @Test
  void otherSettingsOrABrokenFileAreErrorsThatChangeNothing() throws Exception {
    Path ckpt = dir.resolve("run.ckpt.safetensors");
    try (AdapterModel model = open()) {
      trainer(2, ckpt).fit(model, data(), List.of());
    }
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {7f, 8f});
      Trainer otherBatch = Trainer.builder().batchSize(2).epochs(2).seed(5).checkpoint(ckpt).progress(null).build();
      FormatException e = assertThrows(FormatException.class, () -> otherBatch.fit(model, data(), List.of()));
      assertTrue(e.getMessage().contains("batch_size = 4, this run has 2"), e.getMessage());

      Path broken = dir.resolve("broken.safetensors");
      byte[] bytes = Files.readAllBytes(ckpt);
      Files.write(broken, java.util.Arrays.copyOf(bytes, bytes.length - 3));
      model.setParameter("p", new float[] {7f, 8f});
      assertThrows(FormatException.class, () -> model.loadCheckpoint(broken));
      assertArrayEquals(new float[] {7f, 8f}, model.getParameter("p"), 0f, "a failed load changes nothing");
      assertThrows(GraftException.class, () -> model.loadCheckpoint(dir.resolve("missing.safetensors")));
    }
  }

  /** {@code file}'s checkpoint with metadata {@code key} set to {@code value} or tensor {@code key} replaced. */
  private static void rewrite(Path file, java.util.function.Consumer<Safetensors.Contents> check,
      java.util.function.BiConsumer<java.util.Map<String, TensorData>, java.util.Map<String, String>> change) {
    Safetensors.Contents c = Safetensors.read(file);
    check.accept(c);
    java.util.Map<String, TensorData> tensors = new java.util.LinkedHashMap<>(c.tensors());
    java.util.Map<String, String> meta = new java.util.LinkedHashMap<>(c.metadata());
    change.accept(tensors, meta);
    Safetensors.write(file, tensors, meta);
  }

  @Test
  void finding6_checkpointWithNegativeStepChangesNothing() throws Exception {
    Path file = dir.resolve("state.safetensors");
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {0.5f, 0.25f});
      trainer(1, null).fit(model, data(), List.of());
      model.saveCheckpoint(file);
    }
    rewrite(file, c -> assertEquals("3", c.metadata().get("step")), (t, m) -> m.put("step", "-5"));
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {7f, 8f});
      FormatException e = assertThrows(FormatException.class, () -> model.loadCheckpoint(file));
      assertTrue(e.getMessage().contains("step must be >= 0, got -5"), e.getMessage());
      assertArrayEquals(new float[] {7f, 8f}, model.getParameter("p"), 0f, "a failed load changes nothing");
      assertArrayEquals(new float[] {0f, 0f}, model.optimizerState("p", false), 0f);
      assertEquals(0, model.getStep());
    }
  }

  @Test
  void finding6_nanTensorsAreRefused() throws Exception {
    Path file = dir.resolve("state.safetensors");
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {0.5f, 0.25f});
      trainer(1, null).fit(model, data(), List.of());
      model.saveCheckpoint(file);
    }
    rewrite(file, c -> assertTrue(c.tensors().containsKey("p.adam_v")),
        (t, m) -> t.put("p.adam_v", TensorData.ofFloats(new long[] {1, 2}, new float[] {1f, Float.NaN})));
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {7f, 8f});
      FormatException e = assertThrows(FormatException.class, () -> model.loadCheckpoint(file));
      assertEquals(RuntimeErrorCode.FORMAT, e.getErrorCode());
      assertTrue(e.getMessage().contains("tensor 'p.adam_v' holds NaN at element 1"), e.getMessage());
      assertArrayEquals(new float[] {7f, 8f}, model.getParameter("p"), 0f, "a failed load changes nothing");
      assertEquals(0, model.getStep());
    }
  }
}
