package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.AdapterOptions;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.merge.AdapterDelta;
import dev.graft.runtime.merge.Merge;
import dev.graft.runtime.merge.MergeResult;
import dev.graft.runtime.merge.SiteDelta;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Merging grafts of different linear-site kinds (LoRA r4, LoKr, LoHa) on the MatMul and
 * transposed-Gemm sites of the tiny host: the inputs' ΔW from their update graphs, the result
 * written into a LoRA graft ({@code loadInto}, checked by its own update graph), as a PEFT folder
 * that the LoRA graft loads back, and as a merged ONNX model that a bare ONNX Runtime runs.
 */
class MergingTest {
  private static final int LABELS = 3;
  @TempDir static Path hostDir;
  private static Path host;
  @TempDir Path dir;

  @BeforeAll
  static void writeHost() throws Exception {
    host = ExportFixtures.sitesHost(hostDir);
  }

  private static CompiledGraft graft(String kind, Consumer<AdapterOptions> options) {
    return Graft.host(host).adapter(kind, ExportFixtures.ALL_SITES, options::accept).classification(LABELS).compile();
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(host).withTraining(false));
  }

  private static AdapterDelta trained(String kind, Consumer<AdapterOptions> options, long seed, float[][][] predicted) {
    try (AdapterModel m = open(graft(kind, options))) {
      ExportFixtures.randomize(m, seed, 0.2);
      predicted[0] = m.predict(ExportFixtures.inputs());
      return m.delta(kind);
    }
  }

  @Test
  void linearOfOneLoraWithWeightOneIsThatLora() {
    float[][][] p = new float[1][][];
    AdapterDelta lora = trained("lora", o -> o.set("rank", 4).set("alpha", 8.0), 21, p);
    MergeResult r = Merge.method("linear").add(lora, 1).run();
    try (AdapterModel target = open(graft("lora", o -> o.set("rank", 4).set("alpha", 8.0)))) {
      r.loadInto(target);
      double worst = ExportFixtures.maxDifference(p[0], target.predict(ExportFixtures.inputs()));
      assertTrue(worst <= 1e-5, "max |merged − input| " + worst);
    }
  }

  @Test
  void loraLokrAndLohaMergeToOneLoraAndToAMergedModel() throws Exception {
    float[][][] p = new float[1][][];
    AdapterDelta lora = trained("lora", o -> o.set("rank", 4).set("alpha", 8.0), 21, p);
    AdapterDelta lokr = trained("lokr", o -> o.set("rank", 1).set("alpha", 3.0), 22, p);
    AdapterDelta loha = trained("loha", o -> o.set("rank", 2).set("alpha", 4.0), 23, p);
    assertEquals(lora.sites().keySet(), lokr.sites().keySet());
    MergeResult cat = Merge.method("cat").add(lora, 1).add(lokr, 0.5).add(loha, -0.7).run();
    for (SiteDelta d : cat.sites().values()) {
      double[] want = new double[d.in() * d.out()];
      double[][] parts = {lora.sites().get(d.site()).weight(), lokr.sites().get(d.site()).weight(),
          loha.sites().get(d.site()).weight()};
      double[] w = {1, 0.5, -0.7};
      double scale = 0;
      for (int k = 0; k < 3; k++) {
        for (int i = 0; i < want.length; i++) {
          want[i] += w[k] * parts[k][i];
        }
      }
      double[] got = d.weight();
      double worst = 0;
      for (int i = 0; i < want.length; i++) {
        worst = Math.max(worst, Math.abs(want[i] - got[i]));
        scale = Math.max(scale, Math.abs(want[i]));
      }
      assertTrue(worst <= 1e-6 && scale > 1e-2, d.site() + ": |cat − Σ w·ΔW| " + worst + " of " + scale);
    }
    // Full rank (66 = the narrower width of every site): the re-factorization drops nothing.
    MergeResult full = cat.toRank(66);
    full.discarded().forEach((site, lost) -> assertTrue(lost <= 1e-9 * full.sites().get(site).norm(), site + " " + lost));
    CompiledGraft loraTarget = graft("lora", o -> o.set("rank", 66).set("alpha", 33.0).set("rslora", true));
    float[][] merged;
    Path peft = dir.resolve("peft");
    Path onnx = dir.resolve("onnx");
    try (AdapterModel target = open(loraTarget)) {
      float[][] plain = target.predict(ExportFixtures.inputs());
      full.loadInto(target);
      merged = target.predict(ExportFixtures.inputs());
      assertTrue(ExportFixtures.maxDifference(plain, merged) > 1e-2, "the merged update moves the predictions");
      full.savePeft(peft, target.getManifest());
      cat.exportMerged(target, onnx, ExportOptions.defaults());
    }
    JsonObject config = JsonParser.parseString(Files.readString(peft.resolve(PeftAdapters.CONFIG_FILE),
        StandardCharsets.UTF_8)).getAsJsonObject();
    assertEquals(66, config.get("r").getAsInt());
    assertTrue(config.get("use_rslora").getAsBoolean());
    JsonObject provenance = config.getAsJsonObject("graft_merge");
    assertEquals("cat", provenance.get("method").getAsString());
    assertEquals(66, provenance.get("rank").getAsInt());
    assertEquals("[\"lora\",\"lokr\",\"loha\"]", provenance.getAsJsonArray("inputs").asList().stream()
        .map(e -> e.getAsJsonObject().get("name")).toList().toString().replace(" ", ""));
    try (AdapterModel again = open(loraTarget)) {
      again.loadAdapter(peft);
      double worst = ExportFixtures.maxDifference(merged, again.predict(ExportFixtures.inputs()));
      assertTrue(worst <= 1e-5, "the PEFT folder loads back: " + worst);
    }
    ExportFixtures.BareResult bare = ExportFixtures.bareRun(onnx.resolve("model.onnx"), ExportFixtures.inputs(), dir);
    double worst = ExportFixtures.maxDifference(merged, bare.rows(loraTarget.manifest().getLogits(), LABELS));
    System.out.printf("MergingTest cat of LoRA, LoKr, LoHa: max |merged ONNX − LoRA r66 target| %.3g%n", worst);
    assertTrue(worst <= 1e-4, "max |merged ONNX − target| " + worst);
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(onnx.resolve("model.onnx")));
    assertTrue(m.getMetadataPropsList().stream().anyMatch(e -> e.getKey().equals("graft_merge")
        && e.getValue().contains("\"method\":\"cat\"")), "the provenance is in the model's metadata");
  }

  @Test
  void resultsThatDoNotFitTheirTargetAreR133AndInputsWithoutAWeightUpdateR131() {
    float[][][] p = new float[1][][];
    AdapterDelta a = trained("lora", o -> o.set("rank", 4).set("alpha", 8.0), 21, p);
    AdapterDelta b = trained("lora", o -> o.set("rank", 4).set("alpha", 8.0), 22, p);
    MergeResult ties = Merge.method("ties").add(a, 1).add(b, 1).run();
    try (AdapterModel target = open(graft("lora", o -> o.set("rank", 4).set("alpha", 8.0)))) {
      float[] before = target.getParameter(target.getParameters().get(0).getName());
      GraftException e = assertThrows(GraftException.class, () -> ties.loadInto(target));
      assertEquals("GRAFT-R133", e.getCode());
      assertTrue(e.getMessage().contains("re-factor the result with toRank(4) first"), e.getMessage());
      assertEquals("GRAFT-R133", assertThrows(GraftException.class, () -> ties.toRank(5).loadInto(target)).getCode());
      assertTrue(java.util.Arrays.equals(before, target.getParameter(target.getParameters().get(0).getName())),
          "a refused load changes nothing");
      ties.toRank(4).loadInto(target);
    }
    try (AdapterModel lokr = open(graft("lokr", o -> o.set("rank", 1).set("alpha", 3.0)))) {
      assertEquals("GRAFT-R133", assertThrows(GraftException.class,
          () -> Merge.method("linear").add(a, 1).run().loadInto(lokr)).getCode());
    }
    try (AdapterModel bottleneck = AdapterModel.open(Graft.graphs(Graft.host(host).bottleneck(".*/value/Gemm", o -> {})
        .classification(LABELS).compile()), ModelOptions.defaults().withHost(host).withTraining(false))) {
      GraftException e = assertThrows(GraftException.class, () -> bottleneck.delta("b"));
      assertEquals("GRAFT-R131", e.getCode());
      assertTrue(e.getMessage().contains("expected only adapters with a weight update at linear sites"), e.getMessage());
    }
  }
}
