package dev.graft.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TinyGraphs;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.state.Checkpoints;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoint keeping on the tiny graph, where every step is known in closed form: with learning
 * rate 0.1 each step sets {@code p ← 0.7 p}, so the state after step s is {@code p0 · 0.7^s} and the
 * loss of step s (before its update) is {@code 15 · 0.49^(s-1)} from {@code p0 = [1, -2]}.
 */
class CheckpointKeeperTest {
  @TempDir Path dir;

  private AdapterModel open() throws IOException {
    AdapterModel m = AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)));
    m.setParameter("p", new float[] {1f, -2f});
    return m;
  }

  /** 10 examples in batches of 4: 3 steps an epoch. */
  private static List<Example> data() {
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      train.add(TrainerTest.example(1 + i % 4, i % 2));
    }
    return train;
  }

  private static Trainer.Builder trainer(int epochs) {
    return Trainer.builder().batchSize(4).epochs(epochs).learningRate(0.1f).seed(5).progress(null);
  }

  private static double lossOfStep(long s) {
    return 15 * Math.pow(0.49, s - 1);
  }

  private static List<String> checkpointFiles(Path folder) throws IOException {
    try (Stream<Path> s = Files.list(folder)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> !n.equals(KeptCheckpoints.INDEX)).sorted().toList();
    }
  }

  @Test
  void keepsTheLastKOneEveryNStepsWithWindowLossAndMetric() throws Exception {
    Path folder = dir.resolve("kept");
    CheckpointKeeper keeper = CheckpointKeeper.into(folder).every(2).keepLast(3)
        .metric("p0", m -> m.getParameter("p")[0]).build();
    List<Integer> filesSeen = new ArrayList<>();
    TrainingListener counter = new TrainingListener() {
      @Override
      public void onStep(Step step) {
        try {
          filesSeen.add(checkpointFiles(folder).size());
        } catch (IOException e) {
          throw new java.io.UncheckedIOException(e);
        }
      }
    };
    try (AdapterModel model = open()) {
      trainer(4).listener(keeper).listener(counter).build().fit(model, data(), List.of());
      assertEquals(12, model.getStep());
    }
    // saved at steps 2, 4, …, 12; the folder never held more than 3
    assertEquals(List.of(0, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 3), filesSeen);
    KeptCheckpoints kept = KeptCheckpoints.read(folder);
    assertEquals(List.of(8L, 10L, 12L), kept.checkpoints().stream().map(KeptCheckpoints.Checkpoint::step).toList());
    assertEquals(List.of("step-00000008.safetensors", "step-00000010.safetensors", "step-00000012.safetensors"),
        checkpointFiles(folder));
    assertEquals("Tiny", kept.graft());
    assertEquals("p0", kept.metricName());
    assertEquals("4", kept.settings().get("batch_size"));
    for (KeptCheckpoints.Checkpoint c : kept.checkpoints()) {
      double scale = Math.pow(0.7, c.step());
      assertEquals((lossOfStep(c.step() - 1) + lossOfStep(c.step())) / 2, c.trainLoss(), 1e-4 * c.trainLoss());
      assertEquals(2, c.windowSteps());
      assertEquals(scale, c.metric(), 1e-5);
      assertEquals((c.step() - 1) / 3 + 1, c.epoch());
      float[] p = Checkpoints.readParameters(TinyGraphs.graphs().manifest(), c.file()).get("p");
      assertArrayEquals(new float[] {(float) scale, (float) (-2 * scale)}, p, 1e-6f);
    }
    assertEquals(List.of(10L, 12L), kept.last(2).stream().map(KeptCheckpoints.Checkpoint::step).toList());
    assertEquals(3, kept.last(7).size());
  }

  @Test
  void everyStepByDefaultKeepingTheLastFive() throws Exception {
    Path folder = dir.resolve("kept");
    try (AdapterModel model = open()) {
      trainer(3).listener(CheckpointKeeper.into(folder).build()).build().fit(model, data(), List.of());
    }
    KeptCheckpoints kept = KeptCheckpoints.read(folder);
    assertEquals(List.of(5L, 6L, 7L, 8L, 9L), kept.checkpoints().stream().map(KeptCheckpoints.Checkpoint::step).toList());
    assertNull(kept.metricName());
    for (KeptCheckpoints.Checkpoint c : kept.checkpoints()) {
      assertEquals(lossOfStep(c.step()), c.trainLoss(), 1e-4 * c.trainLoss());
      assertNull(c.metric());
    }
    assertEquals(5, checkpointFiles(folder).size());
  }

  @Test
  void aKilledRunLeavesALoadableFolderAndItsResumptionKeepsWhatAnUninterruptedRunKeeps() throws Exception {
    Path straightFolder = dir.resolve("straight");
    try (AdapterModel model = open()) {
      trainer(3).listener(CheckpointKeeper.into(straightFolder).every(2).keepLast(3).build()).build()
          .fit(model, data(), List.of());
    }
    Path folder = dir.resolve("kept");
    Path trainerCheckpoint = dir.resolve("run.safetensors");
    LearningRate dying = (step, total) -> {
      if (step == 7) {
        throw new IllegalStateException("killed");
      }
      return 0.1f;
    };
    try (AdapterModel model = open()) {
      Trainer t = trainer(3).learningRate(dying).checkpoint(trainerCheckpoint)
          .listener(CheckpointKeeper.into(folder).every(2).keepLast(3).build()).build();
      assertThrows(IllegalStateException.class, () -> t.fit(model, data(), List.of()));
    }
    // killed after step 7: kept 2, 4, 6 → 4 was dropped for 6; every listed file loads
    KeptCheckpoints afterCrash = KeptCheckpoints.read(folder);
    assertEquals(List.of(2L, 4L, 6L), afterCrash.checkpoints().stream().map(KeptCheckpoints.Checkpoint::step).toList());
    for (KeptCheckpoints.Checkpoint c : afterCrash.checkpoints()) {
      assertEquals(1, Checkpoints.readParameters(TinyGraphs.graphs().manifest(), c.file()).size());
    }
    // what a crash mid-save leaves: a file the index does not list yet, and a temporary
    Files.copy(afterCrash.checkpoints().get(2).file(), folder.resolve("step-00000008.safetensors"));
    Files.writeString(folder.resolve(".step-00000008.safetensors.graft-tmp-x1"), "partial");
    Files.writeString(folder.resolve("notes.txt"), "not ours: stays");
    try (AdapterModel model = open()) {
      // resumed from the trainer's checkpoint of epoch 2 (step 6)
      trainer(3).checkpoint(trainerCheckpoint).listener(CheckpointKeeper.into(folder).every(2).keepLast(3).build())
          .build().fit(model, data(), List.of());
      assertEquals(9, model.getStep());
    }
    KeptCheckpoints resumed = KeptCheckpoints.read(folder);
    KeptCheckpoints straight = KeptCheckpoints.read(straightFolder);
    assertEquals(straight.checkpoints().stream().map(KeptCheckpoints.Checkpoint::step).toList(),
        resumed.checkpoints().stream().map(KeptCheckpoints.Checkpoint::step).toList());
    assertEquals(List.of(4L, 6L, 8L), resumed.checkpoints().stream().map(KeptCheckpoints.Checkpoint::step).toList());
    for (int i = 0; i < 3; i++) {
      assertArrayEquals(
          Checkpoints.readParameters(TinyGraphs.graphs().manifest(), straight.checkpoints().get(i).file()).get("p"),
          Checkpoints.readParameters(TinyGraphs.graphs().manifest(), resumed.checkpoints().get(i).file()).get("p"), 0f);
    }
    assertEquals(List.of("notes.txt", "step-00000004.safetensors", "step-00000006.safetensors",
        "step-00000008.safetensors"), checkpointFiles(folder));
  }

  @Test
  void aFreshRunIntoAFolderOfAnotherRunIsGraftR141() throws Exception {
    Path folder = dir.resolve("kept");
    try (AdapterModel model = open()) {
      trainer(1).listener(CheckpointKeeper.into(folder).build()).build().fit(model, data(), List.of());
    }
    List<String> before = checkpointFiles(folder);
    try (AdapterModel model = open()) {
      GraftException e = assertThrows(GraftException.class,
          () -> trainer(1).listener(CheckpointKeeper.into(folder).build()).build().fit(model, data(), List.of()));
      assertEquals(RuntimeErrorCode.CHECKPOINT_FOLDER_IN_USE, e.getErrorCode());
      assertTrue(e.getMessage().startsWith("[GRAFT-R141]") && e.getMessage().contains("this run starts fresh"),
          e.getMessage());
      assertEquals(0, model.getStep(), "nothing trained");
    }
    assertEquals(before, checkpointFiles(folder));
  }

  @Test
  void aMetricThatIsNotFiniteIsAnError() throws Exception {
    try (AdapterModel model = open()) {
      Trainer t = Trainer.builder().batchSize(4).epochs(1).progress(null)
          .listener(CheckpointKeeper.into(dir.resolve("kept")).metric("acc", m -> Double.NaN).build()).build();
      GraftException e = assertThrows(GraftException.class, () -> t.fit(model, data(), List.of()));
      assertTrue(e.getMessage().startsWith("[GRAFT-R142]") && e.getMessage().contains("metric 'acc' is NaN"),
          e.getMessage());
    }
  }

  @Test
  void builderArgumentsAreChecked() {
    assertEquals("GRAFT-R007", assertThrows(GraftException.class, () -> CheckpointKeeper.into(dir).every(0)).getCode());
    assertEquals("GRAFT-R007", assertThrows(GraftException.class, () -> CheckpointKeeper.into(dir).keepLast(0)).getCode());
    assertEquals("GRAFT-R007",
        assertThrows(GraftException.class, () -> CheckpointKeeper.into(dir).metric(" ", m -> 1)).getCode());
  }
}
