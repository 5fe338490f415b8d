package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.merge.AdapterDelta;
import dev.graft.runtime.merge.HeadTensor;
import dev.graft.runtime.merge.MergeResult;
import dev.graft.runtime.merge.SiteDelta;
import dev.graft.runtime.train.CheckpointAverage;
import dev.graft.runtime.train.KeptCheckpoints;
import dev.graft.runtime.train.MetricsWeighting;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Averaging checkpoints of a LoRA (rank 2 on query and key of a tiny BERT-like host, 2-class head)
 * in parameter space and in {@code ΔW} space (the merge registry's {@code linear}).
 */
class CheckpointAverageTest {
  @TempDir static Path hostDir;
  private static Path host;
  private static CompiledGraft graft;
  @TempDir Path dir;

  @BeforeAll
  static void compile() throws Exception {
    host = ExportFixtures.sitesHost(hostDir);
    graft = Graft.host(host).lora(ExportFixtures.MATMUL_SITES, l -> l.rank(2).alpha(4)).classification(2).compile();
  }

  private AdapterModel open() {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(host));
  }

  /** Saves {@code model}'s state after randomizing it with {@code seed} as the checkpoint of {@code step}. */
  private KeptCheckpoints.Checkpoint checkpoint(AdapterModel model, long seed, long step, double loss) {
    if (seed != 0) {
      ExportFixtures.randomize(model, seed);
    }
    Path file = dir.resolve(String.format(java.util.Locale.ROOT, "step-%08d.safetensors", step));
    model.saveCheckpoint(file);
    return new KeptCheckpoints.Checkpoint(step, 1, file, loss, 1, null);
  }

  private static void assertSameDeltas(AdapterDelta expected, MergeResult got, double tolerance) {
    assertEquals(expected.sites().keySet(), got.sites().keySet());
    for (SiteDelta d : expected.sites().values()) {
      assertArrayEquals(d.weight(), got.sites().get(d.site()).weight(), tolerance, d.site());
      assertArrayEquals(d.bias(), got.sites().get(d.site()).bias(), tolerance, d.site());
    }
    assertEquals(expected.head().keySet(), got.head().keySet());
    for (HeadTensor t : expected.head().values()) {
      assertArrayEquals(t.values(), got.head().get(t.key()).values(), tolerance, t.key());
    }
  }

  @Test
  void theAverageOfIdenticalCheckpointsIsThatCheckpointInBothSpaces() {
    try (AdapterModel model = open()) {
      ExportFixtures.randomize(model, 5);
      Map<String, float[]> state = model.getParameterValues();
      AdapterDelta delta = model.delta("state");
      List<KeptCheckpoints.Checkpoint> same = List.of(checkpoint(model, 0, 10, 0.9), checkpoint(model, 0, 20, 0.5),
          checkpoint(model, 0, 30, 0.2));
      for (MetricsWeighting w : List.of(MetricsWeighting.uniform(), MetricsWeighting.loss(2), MetricsWeighting.step(1))) {
        ExportFixtures.randomize(model, 99);
        CheckpointAverage average = CheckpointAverage.of(same, w);
        MergeResult merged = average.inDeltaW(model).merge();
        assertSameDeltas(delta, merged, 1e-9);
        average.inParameters(model);
        for (Map.Entry<String, float[]> e : state.entrySet()) {
          float[] got = model.getParameter(e.getKey());
          for (int i = 0; i < got.length; i++) {
            assertEquals(e.getValue()[i], got[i], 1e-7 * Math.abs(e.getValue()[i]), e.getKey() + " with " + w.label());
          }
        }
      }
    }
  }

  @Test
  void parameterSpaceIsTheWeightedMeanOfEachTensorAndDeltaSpaceOfEachUpdate() {
    try (AdapterModel model = open()) {
      List<KeptCheckpoints.Checkpoint> list = new ArrayList<>();
      List<Map<String, float[]>> states = new ArrayList<>();
      List<AdapterDelta> deltas = new ArrayList<>();
      double[] losses = {1.0, 3.0};
      for (int i = 0; i < 2; i++) {
        list.add(checkpoint(model, 7 + i, 10L * (i + 1), losses[i]));
        states.add(model.getParameterValues());
        deltas.add(model.delta("c" + i));
      }
      // loss-weighted, p = 1: m = 1, 1/3 → w = 3/4, 1/4
      CheckpointAverage average = CheckpointAverage.of(list, MetricsWeighting.loss(1));
      assertArrayEquals(new double[] {0.75, 0.25}, average.weights(), 1e-15);
      Map<String, float[]> before = model.getParameterValues();
      CheckpointAverage.DeltaAverage byDelta = average.inDeltaW(model);
      for (Map.Entry<String, float[]> e : before.entrySet()) {
        assertArrayEquals(e.getValue(), model.getParameter(e.getKey()), 0f, "inDeltaW leaves the model as it was");
      }
      for (String site : deltas.get(0).sites().keySet()) {
        double[] a = deltas.get(0).sites().get(site).weight();
        double[] b = deltas.get(1).sites().get(site).weight();
        double[] got = byDelta.merge().sites().get(site).weight();
        for (int j = 0; j < got.length; j++) {
          assertEquals(0.75 * a[j] + 0.25 * b[j], got[j], 1e-9, site);
        }
      }
      average.inParameters(model);
      for (String name : before.keySet()) {
        float[] a = states.get(0).get(name);
        float[] b = states.get(1).get(name);
        float[] got = model.getParameter(name);
        for (int j = 0; j < got.length; j++) {
          assertEquals(0.75 * a[j] + 0.25 * b[j], got[j], 1e-6, name);
        }
      }
      // LoRA: the parameter-space average's ΔW = (Σ w A)(Σ w B) is not Σ w A·B (the cross terms)
      AdapterDelta fromParameters = model.delta("parameters");
      double gap = 0;
      for (String site : fromParameters.sites().keySet()) {
        double[] p = fromParameters.sites().get(site).weight();
        double[] d = byDelta.merge().sites().get(site).weight();
        for (int j = 0; j < p.length; j++) {
          gap = Math.max(gap, Math.abs(p[j] - d[j]));
        }
      }
      assertTrue(gap > 1e-3, "the two spaces differ for LoRA: " + gap);
    }
  }

  @Test
  void theSavedAverageCarriesItsProvenanceAndReloads() {
    Path saved = dir.resolve("averaged");
    Map<String, float[]> averaged;
    try (AdapterModel model = open()) {
      List<KeptCheckpoints.Checkpoint> list = List.of(checkpoint(model, 1, 4, 0.5), checkpoint(model, 2, 8, 0.25));
      CheckpointAverage average = CheckpointAverage.of(list, MetricsWeighting.step(2));
      CheckpointAverage.Averaged result = average.inParameters(model);
      result.saveAdapter(model, saved);
      averaged = model.getParameterValues();
      JsonObject p = PeftAdapters.readConfig(saved).getAsJsonObject(CheckpointAverage.PROVENANCE_KEY);
      assertEquals("checkpoint-average", p.get("method").getAsString());
      assertEquals("parameters", p.get("space").getAsString());
      assertEquals("step", p.get("metric").getAsString());
      assertEquals(2.0, p.get("exponent").getAsDouble());
      JsonArray inputs = p.getAsJsonArray("inputs");
      assertEquals(2, inputs.size());
      assertEquals("step-00000004.safetensors", inputs.get(0).getAsJsonObject().get("file").getAsString());
      assertEquals(8, inputs.get(1).getAsJsonObject().get("step").getAsLong());
      assertEquals(0.25, inputs.get(1).getAsJsonObject().get("train_loss").getAsDouble());
      // step² = 16, 64 → 0.2, 0.8
      assertEquals(0.2, inputs.get(0).getAsJsonObject().get("weight").getAsDouble(), 1e-15);
      assertEquals(0.8, inputs.get(1).getAsJsonObject().get("weight").getAsDouble(), 1e-15);

      JsonObject d = average.inDeltaW(model).provenance();
      assertEquals("delta_w", d.get("space").getAsString());
      assertEquals("linear", d.getAsJsonObject("merge").get("method").getAsString());
      assertEquals("step-00000008.safetensors",
          d.getAsJsonObject("merge").getAsJsonArray("inputs").get(1).getAsJsonObject().get("name").getAsString());
      assertEquals("GRAFT-R007", assertThrows(GraftException.class,
          () -> average.inDeltaW(model).averaged().saveAdapter(model, dir.resolve("no"))).getCode());
    }
    try (AdapterModel reloaded = open()) {
      reloaded.loadAdapter(saved);
      for (Map.Entry<String, float[]> e : averaged.entrySet()) {
        assertArrayEquals(e.getValue(), reloaded.getParameter(e.getKey()), 0f, e.getKey());
      }
    }
  }

  @Test
  void aCheckpointOfAnotherGraftChangesNothing() throws Exception {
    CompiledGraft other = Graft.host(host).lora(ExportFixtures.MATMUL_SITES, l -> l.rank(3)).classification(2)
        .name("Other").compile();
    Path foreign = dir.resolve("step-00000002.safetensors");
    try (AdapterModel o = AdapterModel.open(Graft.graphs(other), ModelOptions.defaults().withHost(host))) {
      o.saveCheckpoint(foreign);
    }
    try (AdapterModel model = open()) {
      KeptCheckpoints.Checkpoint ours = checkpoint(model, 4, 1, 0.5);
      ExportFixtures.randomize(model, 12);
      Map<String, float[]> before = model.getParameterValues();
      CheckpointAverage average = CheckpointAverage.of(
          List.of(ours, new KeptCheckpoints.Checkpoint(2, 1, foreign, 0.4, 1, null)), MetricsWeighting.uniform());
      FormatException e = assertThrows(FormatException.class, () -> average.inParameters(model));
      assertTrue(e.getMessage().contains("was saved from graft 'Other'"), e.getMessage());
      assertThrows(FormatException.class, () -> average.inDeltaW(model));
      for (Map.Entry<String, float[]> b : before.entrySet()) {
        assertArrayEquals(b.getValue(), model.getParameter(b.getKey()), 0f);
      }
    }
  }
}
