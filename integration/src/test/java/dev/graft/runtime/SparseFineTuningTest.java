package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.SparseDiff;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.train.SparseFineTuning;
import dev.graft.runtime.train.Trainer;
import dev.graft.testing.TinyBertHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LT-SFT through the runtime on the tiny BERT: the two phases (K entries trained, every other
 * entry of Δ exactly zero), composition by addition, the sparse-difference file and its refusals.
 */
class SparseFineTuningTest {
  @TempDir static Path hostDir;
  private static Path host;
  private static CompiledGraft graft;
  @TempDir Path dir;

  @BeforeAll
  static void writeHost() throws Exception {
    host = hostDir.resolve("tiny-bert.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(3), "tiny-bert").toByteArray());
    graft = Graft.host(host).sparseFineTuning(".*layer\\.[0-9]+/output/dense/MatMul").classification(2).compile();
  }

  private static AdapterModel open() {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3));
  }

  private static List<Example> examples() {
    Random r = new Random(8);
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < 16; i++) {
      long[] ids = new long[5];
      for (int j = 0; j < ids.length; j++) {
        ids[j] = 1 + r.nextInt(40);
      }
      out.add(new Example(Map.of("input_ids", ids, "attention_mask", new long[] {1, 1, 1, 1, 1},
          "token_type_ids", new long[5]), ids[0] % 2));
    }
    return out;
  }

  private static Trainer trainer(int epochs) {
    return Trainer.builder().batchSize(4).epochs(epochs).learningRate(0.05f).seed(5).progress(null).build();
  }

  @Test
  void twoPhasesTrainExactlyKEntriesOfDelta() {
    try (AdapterModel model = open()) {
      ByteArrayOutputStream log = new ByteArrayOutputStream();
      SparseFineTuning.Result r = SparseFineTuning.train(model, trainer(2), trainer(3), 20,
          SparseFineTuning.Selection.GLOBAL, examples(), List.of(), new PrintStream(log, true, StandardCharsets.UTF_8));
      String progress = log.toString(StandardCharsets.UTF_8);
      System.out.print(progress);
      assertTrue(progress.contains("phase 1") && progress.contains("phase 2: 20 of 256 entries"), progress);
      assertEquals(20, r.diff().size());
      long nonZero = 0;
      for (String p : model.getUpdateMaskParameters()) {
        float[] delta = model.getParameter(p);
        boolean[] mask = model.getUpdateMask(p);
        for (int i = 0; i < delta.length; i++) {
          if (!mask[i]) {
            assertEquals(0f, delta[i], p + "[" + i + "] is outside the K and stays θ0");
          } else if (delta[i] != 0) {
            nonZero++;
          }
        }
      }
      assertEquals(20, nonZero, "every chosen entry moved in phase 2");
      float first = r.phase2().epochs().get(0).meanLoss();
      float last = r.phase2().epochs().get(2).meanLoss();
      System.out.printf("ltsft phase 2 mean loss %.5f -> %.5f%n", first, last);
      assertTrue(last < first, "phase 2 lowers the loss: " + first + " -> " + last);
      // Phase 2's K entries apply to a fresh model as the trained one.
      try (AdapterModel fresh = open()) {
        model.getParameterValues().forEach((n, v) -> {
          if (!model.getUpdateMaskParameters().contains(n)) {
            fresh.setParameter(n, v);
          }
        });
        r.diff().applyTo(fresh);
        Map<String, long[][]> in = Map.of("input_ids", new long[][] {{3, 7, 12, 8, 1}}, "attention_mask",
            new long[][] {{1, 1, 1, 1, 1}}, "token_type_ids", new long[][] {{0, 0, 0, 0, 0}});
        assertArrayEquals(model.predict(in)[0], fresh.predict(in)[0], 0f);
      }
    }
  }

  @Test
  void selectionKeepsTheLargestMagnitudesGloballyOrPerParameter() {
    Map<String, float[]> d = new LinkedHashMap<>();
    d.put("b", new float[] {0.1f, -5f, 0.3f});
    d.put("a", new float[] {2f, -0.2f, 0.3f, 0f});
    Map<String, boolean[]> global = SparseFineTuning.select(d, 3, SparseFineTuning.Selection.GLOBAL);
    assertArrayEquals(new boolean[] {true, false, true, false}, global.get("a"), "2 and the first 0.3 (name order)");
    assertArrayEquals(new boolean[] {false, true, false}, global.get("b"));
    Map<String, boolean[]> each = SparseFineTuning.select(d, 1, SparseFineTuning.Selection.PER_PARAMETER);
    assertArrayEquals(new boolean[] {true, false, false, false}, each.get("a"));
    assertArrayEquals(new boolean[] {false, true, false}, each.get("b"));
    GraftException e = assertThrows(GraftException.class, () -> SparseFineTuning.select(d, 8, SparseFineTuning.Selection.GLOBAL));
    assertTrue(e.getMessage().contains("GRAFT-R332") && e.getMessage().contains("1..7"), e.getMessage());
  }

  private static SparseDiff random(AdapterModel model, long seed, int perParameter) {
    Random r = new Random(seed);
    Map<String, SparseDiff.Entry> entries = new LinkedHashMap<>();
    for (String p : model.getUpdateMaskParameters()) {
      long[] shape = model.getParameterShape(p);
      boolean[] mask = new boolean[model.getParameter(p).length];
      float[] values = new float[mask.length];
      for (int i = 0; i < perParameter; i++) {
        int j = r.nextInt(mask.length);
        mask[j] = true;
        values[j] = (float) r.nextGaussian();
      }
      entries.put(p, SparseDiff.entry(shape, values, mask));
    }
    return new SparseDiff(entries);
  }

  @Test
  void composingEqualsApplyingEachInTurn() {
    try (AdapterModel inTurn = open(); AdapterModel composed = open()) {
      SparseDiff language = random(inTurn, 1, 30);
      SparseDiff task = random(inTurn, 2, 30);
      language.applyTo(inTurn);
      task.applyTo(inTurn);
      language.plus(task).applyTo(composed);
      for (String p : inTurn.getUpdateMaskParameters()) {
        assertArrayEquals(inTurn.getParameter(p), composed.getParameter(p), 0f, p);
      }
      assertTrue(language.plus(task).size() > 30, "the union of both: " + language.plus(task).size());
    }
  }

  @Test
  void theFileRoundTripsAndBadOnesAreRefused() {
    try (AdapterModel model = open()) {
      SparseDiff d = random(model, 3, 10);
      Path file = dir.resolve("task.safetensors");
      d.write(file);
      SparseDiff back = SparseDiff.read(file);
      assertEquals(d.entries().keySet(), back.entries().keySet());
      for (String p : d.entries().keySet()) {
        assertArrayEquals(d.entries().get(p).indices(), back.entries().get(p).indices());
        assertArrayEquals(d.entries().get(p).values(), back.entries().get(p).values());
        assertArrayEquals(d.entries().get(p).shape(), back.entries().get(p).shape());
      }
      System.out.printf("sparse diff of %d entries: %d bytes%n", d.size(), file.toFile().length());
      Path bad = dir.resolve("bad.safetensors");
      Safetensors.write(bad, Map.of("x.shape", TensorData.ofLongs(new long[] {1}, new long[] {4}),
          "x.indices", TensorData.ofLongs(new long[] {2}, new long[] {2, 1}),
          "x.values", TensorData.ofFloats(new long[] {2}, new float[] {1, 2})), Map.of());
      GraftException e = assertThrows(GraftException.class, () -> SparseDiff.read(bad));
      assertTrue(e.getMessage().contains("GRAFT-R331") && e.getMessage().contains("not above the one before"), e.getMessage());
      Safetensors.write(bad, Map.of("x.shape", TensorData.ofLongs(new long[] {1}, new long[] {4}),
          "x.indices", TensorData.ofLongs(new long[] {1}, new long[] {4}),
          "x.values", TensorData.ofFloats(new long[] {1}, new float[] {1})), Map.of());
      e = assertThrows(GraftException.class, () -> SparseDiff.read(bad));
      assertTrue(e.getMessage().contains("GRAFT-R331") && e.getMessage().contains("outside 0..3"), e.getMessage());
      Safetensors.write(bad, Map.of("x.values", TensorData.ofFloats(new long[] {1}, new float[] {1})), Map.of());
      e = assertThrows(GraftException.class, () -> SparseDiff.read(bad));
      assertTrue(e.getMessage().contains("GRAFT-R331"), e.getMessage());
    }
  }

  @Test
  void aDifferenceOfAnotherShapeIsRefusedAndChangesNothing() {
    try (AdapterModel model = open()) {
      List<String> params = new ArrayList<>(model.getUpdateMaskParameters());
      Map<String, SparseDiff.Entry> entries = new LinkedHashMap<>();
      entries.put(params.get(0), new SparseDiff.Entry(model.getParameterShape(params.get(0)), new long[] {0}, new float[] {1}));
      entries.put(params.get(1), new SparseDiff.Entry(new long[] {3, 3}, new long[] {0}, new float[] {1}));
      Map<String, float[]> before = model.getParameterValues();
      GraftException e = assertThrows(GraftException.class, () -> new SparseDiff(entries).applyTo(model));
      assertTrue(e.getMessage().contains("GRAFT-R330") && e.getMessage().contains("[3, 3]"), e.getMessage());
      before.forEach((n, v) -> assertArrayEquals(v, model.getParameter(n), 0f, n + " unchanged"));
      GraftException missing = assertThrows(GraftException.class, () -> new SparseDiff(Map.of("nope",
          new SparseDiff.Entry(new long[] {1}, new long[] {0}, new float[] {1}))).applyTo(model));
      assertTrue(missing.getMessage().contains("GRAFT-R330"), missing.getMessage());
    }
  }

  @Test
  void aGraftWithoutMaskedParametersIsRefused() {
    try (AdapterModel lora = AdapterModel.open(Graft.graphs(Graft.host(host).lora("", l -> l.rank(2))
        .classification(2).compile()))) {
      GraftException e = assertThrows(GraftException.class, () -> SparseFineTuning.train(lora, trainer(1), trainer(1), 4,
          SparseFineTuning.Selection.GLOBAL, examples(), List.of(), null));
      assertTrue(e.getMessage().contains("GRAFT-R332"), e.getMessage());
    }
  }
}
