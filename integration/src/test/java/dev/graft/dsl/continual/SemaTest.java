package dev.graft.dsl.continual;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.HostModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.Trainer;
import dev.graft.testing.TinyBertHost;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** SEMA's detection (descriptor z-scores), expansion and freezing across tasks on a tiny host. */
class SemaTest {
  /** Gaussian rows {@code [n][d]}: mean {@code shift} on every axis, axis i scaled by {@code 1/(i+1)}. */
  private static float[][] gaussian(int n, int d, double shift, long seed) {
    Random r = new Random(seed);
    float[][] x = new float[n][d];
    for (float[] row : x) {
      for (int i = 0; i < d; i++) {
        row[i] = (float) (shift + r.nextGaussian() / (i + 1));
      }
    }
    return x;
  }

  @Test
  void descriptorScoresSameDistributionNearZeroAndShiftedDataHigh() {
    Descriptor d = Descriptor.fit(gaussian(400, 6, 0, 1), 2, 7);
    double same = d.zScore(gaussian(400, 6, 0, 2));
    double shifted = d.zScore(gaussian(400, 6, 1.5, 3));
    System.out.printf("descriptor z-score: same distribution %.3f, shifted %.3f%n", same, shifted);
    assertTrue(Math.abs(same) < 0.3, "same-distribution z " + same);
    assertTrue(shifted > 5, "shifted z " + shifted);
    // the fitting data's own z-scores average to 0 exactly (up to rounding)
    assertEquals(0, d.zScore(gaussian(400, 6, 0, 1)), 1e-9);
    // the basis is the two widest axes (0 and 1): a residual lives on axes 2..5
    assertTrue(Math.abs(d.basis()[0][0]) > 0.95, "first direction " + java.util.Arrays.toString(d.basis()[0]));
  }

  /** Sentences of 6 tokens drawn from ids {@code [from, from + 8)}, the label being whether the first id is in the upper half. */
  private static List<Example> task(int n, int from, long seed) {
    Random r = new Random(seed);
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      long[] ids = new long[6];
      for (int j = 0; j < ids.length; j++) {
        ids[j] = from + r.nextInt(8);
      }
      Map<String, long[]> f = new HashMap<>();
      f.put("input_ids", ids);
      f.put("attention_mask", new long[] {1, 1, 1, 1, 1, 1});
      f.put("token_type_ids", new long[6]);
      out.add(new Example(f, ids[0] >= from + 4 ? 1 : 0));
    }
    return out;
  }

  @TempDir static Path hostDir;

  private static Sema sema() throws IOException {
    Path hostFile = hostDir.resolve("tiny.onnx");
    Files.write(hostFile, TinyBertHost.host(5).model().toByteArray());
    return Sema.builder(HostModel.read(hostFile)).modelOptions(ModelOptions.defaults().withHost(hostFile)).layers(List.of(0, 1)).reduction(2).descriptorRank(2).threshold(1.0)
        .trainer(Trainer.builder().batchSize(8).epochs(2).learningRate(0.01f).seed(1).progress(null).build())
        .build();
  }

  @Test
  void aShiftedTaskExpandsEveryLayerAndLeavesTheEarlierAdaptersBitForBit() throws IOException {
    try (Sema s = sema()) {
      Sema.TaskReport first = s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      assertEquals(List.of(0, 1), first.expanded());
      assertEquals(List.of(1, 1), s.pools());
      Map<String, float[]> before = s.current().getParameterValues();
      Sema.TaskReport second = s.learn("high ids", task(96, 30, 3), task(32, 30, 4));
      System.out.println("shifted task: " + second);
      second.zScores().forEach(z -> assertTrue(z.get(0) > 1.0, "z " + z));
      assertEquals(List.of(0, 1), second.expanded());
      assertEquals(List.of(2, 2), s.pools());
      Map<String, float[]> after = s.current().getParameterValues();
      int checked = 0;
      for (var e : before.entrySet()) {
        if (e.getKey().contains(".sema.0.")) {
          assertArrayEquals(e.getValue(), after.get(e.getKey()), e.getKey() + " changed in the second task");
          checked++;
        }
      }
      assertEquals(8, checked, "two layers' first adapters, four tensors each");
      // the new adapters trained: their up projection left its zero start
      float[] up = after.get("encoder.layer.0.output.sema.1.up.weight");
      double norm = 0;
      for (float v : up) {
        norm += v * v;
      }
      assertTrue(norm > 0, "the new adapter did not train");
      assertEquals(2, s.descriptors().get(0).size());
    }
  }

  @Test
  void aTaskFromTheSameDistributionDoesNotExpand() throws IOException {
    try (Sema s = sema()) {
      s.learn("low ids", task(96, 1, 1), task(32, 1, 2));
      Sema.TaskReport again = s.learn("low ids again", task(96, 1, 5), task(32, 1, 6));
      System.out.println("same-distribution task: " + again);
      again.zScores().forEach(z -> assertTrue(z.get(0) < 1.0, "z " + z));
      assertEquals(List.of(), again.expanded());
      assertEquals(List.of(1, 1), s.pools());
    }
  }
}
