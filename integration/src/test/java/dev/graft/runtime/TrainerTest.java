package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

class TrainerTest {
  @TempDir Path dir;

  static Example example(int length, long label) {
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
