package dev.graft.runtime.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.TinyGraphs;
import dev.graft.runtime.data.Example;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

public class TrainerTest {
  @TempDir Path dir;

  public static Example example(int length, long label) {
    long[] ids = new long[length];
    java.util.Arrays.fill(ids, 1);
    // token_type_ids is not an input of the tiny graph: the trainer must leave it out
    return new Example(Map.of("input_ids", ids, "attention_mask", ids, "token_type_ids", new long[length]), label);
  }

  @Test
  void fitRunsTheExpectedStepsLossesAndAccuracy() throws Exception {
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      train.add(example(1 + i % 4, i % 2));
    }
    List<Example> heldOut = List.of(example(2, 0), example(3, 0), example(1, 1), example(5, 0));
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    try (AdapterModel model =
        AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)))) {
      model.setParameter("p", new float[] {1f, -2f});
      TrainingResult r =
          Trainer.builder()
              .batchSize(4)
              .epochs(2)
              .learningRate(0.1f)
              .progress(new PrintStream(log, true, StandardCharsets.UTF_8))
              .interactive(false)
              .build()
              .fit(model, train, heldOut);
      // loss of step k (0-based) = 3 * (1 + 4) * 0.49^k, since p <- 0.7 p each step
      double e1 = 15 * (1 + 0.49 + Math.pow(0.49, 2)) / 3;
      double e2 = 15 * (Math.pow(0.49, 3) + Math.pow(0.49, 4) + Math.pow(0.49, 5)) / 3;
      assertEquals(6, r.steps());
      assertEquals(6, model.getStep());
      assertEquals(e1, r.epochs().get(0).meanLoss(), 1e-4);
      assertEquals(e2, r.finalLoss(), 1e-4);
      // logits = s * 3 + p with p0 > p1: every prediction is class 0
      assertEquals(List.of(0.75, 0.75), r.accuracies());
      assertTrue(r.stepsPerSecond() > 0 && r.examplesPerSecond() > 0);
      String text = log.toString(StandardCharsets.UTF_8);
      assertTrue(text.contains("epoch 1/2 step 3/3 loss"), text);
      assertTrue(text.contains("epoch 2/2 done: loss 1.0177"), text);
      assertTrue(text.contains("held-out accuracy 0.7500"), text);
    }
  }

  /** A user listener hears the start, every step and every epoch, with the values the run used and reports. */
  @Test
  void aListenerSeesEveryStepAndEpochWithTheirValues() throws Exception {
    List<Example> train = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      train.add(example(1 + i % 4, i % 2));
    }
    List<Example> heldOut = List.of(example(2, 0), example(3, 0), example(1, 1), example(5, 0));
    List<TrainingListener.Run> starts = new ArrayList<>();
    List<TrainingListener.Step> steps = new ArrayList<>();
    List<TrainingResult.EpochResult> epochs = new ArrayList<>();
    TrainingListener listener = new TrainingListener() {
      @Override
      public void onStart(Run run) {
        starts.add(run);
      }

      @Override
      public void onStep(Step step) {
        steps.add(step);
      }

      @Override
      public void onEpoch(TrainingResult.EpochResult epoch) {
        epochs.add(epoch);
      }
    };
    Path checkpoint = dir.resolve("run.ckpt.safetensors");
    try (AdapterModel model =
        AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)))) {
      model.setParameter("p", new float[] {1f, -2f});
      Trainer trainer = Trainer.builder().batchSize(4).epochs(2).learningRate(0.1f).progress(null)
          .checkpoint(checkpoint).listener(listener).build();
      TrainingResult r = trainer.fit(model, train, heldOut);

      assertEquals(1, starts.size());
      TrainingListener.Run run = starts.get(0);
      assertEquals(model, run.model());
      assertEquals(List.of(2, 3, 6L, 1), List.of(run.epochs(), run.stepsPerEpoch(), run.totalSteps(), run.firstEpoch()));
      assertEquals("4", run.settings().get("batch_size"));
      assertEquals("10", run.settings().get("train_examples"));
      assertNull(run.resumedFrom());

      assertEquals(6, steps.size());
      int examples = 0;
      for (int k = 0; k < 6; k++) {
        TrainingListener.Step s = steps.get(k);
        assertEquals(k + 1, s.step());
        assertEquals(1 + k / 3, s.epoch());
        assertEquals(1 + k % 3, s.stepInEpoch());
        assertEquals(3, s.stepsInEpoch());
        // loss of step k (0-based) = 3 * (1 + 4) * 0.49^k, since p <- 0.7 p each step
        assertEquals(15 * Math.pow(0.49, k), s.loss(), 1e-4);
        assertEquals(0.1f, s.learningRate(), 0f);
        assertTrue(s.examples() == 4 || s.examples() == 2, "batch of " + s.examples());
        examples += s.examples();
        double mean = 0;
        for (int j = k - k % 3; j <= k; j++) {
          mean += steps.get(j).loss();
        }
        assertEquals(mean / (1 + k % 3), s.epochMeanLoss(), 1e-9);
        assertTrue(s.examplesPerSecond() > 0);
      }
      assertEquals(20, examples, "every example once per epoch");

      assertEquals(r.epochs(), epochs, "the listener hears the epochs the result reports");
      assertEquals(List.of(1, 2), epochs.stream().map(TrainingResult.EpochResult::epoch).toList());
      assertEquals(steps.get(2).epochMeanLoss(), epochs.get(0).meanLoss(), 1e-6);
      assertEquals(15 * (1 + 0.49 + Math.pow(0.49, 2)) / 3, epochs.get(0).meanLoss(), 1e-4);
      assertEquals(List.of(0.75, 0.75), epochs.stream().map(TrainingResult.EpochResult::heldOutAccuracy).toList());

      // The checkpoint listener wrote epoch 2: a rerun resumes after it and takes no step.
      starts.clear();
      steps.clear();
      epochs.clear();
      TrainingResult again = trainer.fit(model, train, heldOut);
      assertEquals(0, again.steps());
      assertEquals(3, starts.get(0).firstEpoch());
      assertEquals(checkpoint, starts.get(0).resumedFrom());
      assertEquals(List.of(), steps);
      assertEquals(List.of(), epochs);
    }
  }

  @Test
  void bucketedBatchesCoverEveryExampleOnceWithLittlePadding() {
    List<Example> train = new ArrayList<>();
    Random rng = new Random(3);
    for (int i = 0; i < 103; i++) {
      train.add(example(1 + rng.nextInt(40), i % 2));
    }
    Trainer t = Trainer.builder().batchSize(8).build();
    List<List<Example>> batches = t.batches(train, new Random(1));
    assertEquals(13, batches.size());
    Set<Example> seen = new HashSet<>();
    int padded = 0;
    int real = 0;
    for (List<Example> b : batches) {
      int max = b.stream().mapToInt(Example::length).max().orElseThrow();
      for (Example e : b) {
        assertTrue(seen.add(e));
        padded += max;
        real += e.length();
      }
    }
    assertEquals(103, seen.size());
    assertTrue(padded < real * 1.2, "padding " + padded + " vs tokens " + real);
    assertEquals(batches, t.batches(train, new Random(1)), "same seed, same batches");
  }

  @Test
  void linearScheduleWarmsUpAndDecays() {
    LearningRate lr = LearningRate.linear(1f, 0.25);
    assertEquals(0.5f, lr.at(0, 8), 1e-7f);
    assertEquals(1.0f, lr.at(1, 8), 1e-7f);
    assertEquals(1.0f, lr.at(2, 8), 1e-7f);
    assertEquals(0.5f, lr.at(5, 8), 1e-7f);
    assertEquals(1f / 6, lr.at(7, 8), 1e-7f);
    assertEquals(0.3f, LearningRate.constant(0.3f).at(99, 100), 0f);
  }
}
