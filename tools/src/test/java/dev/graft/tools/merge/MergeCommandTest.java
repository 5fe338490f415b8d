package dev.graft.tools.merge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.merge.AdapterDelta;
import dev.graft.runtime.merge.SiteDelta;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.testing.TinyBertHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The merge command on the tiny BERT: a LoRA r2 and a LoHa r2 adapter, each saved for its own
 * graft, merged by {@code cat} into a PEFT folder for a LoRA r8 graft (whose update is then the
 * weighted sum of the inputs' within 1e-5) and into a merged ONNX model; bad arguments give the
 * usage, a result that does not fit its target its code.
 */
class MergeCommandTest {
  @TempDir static Path hostDir;
  private static Path host;
  @TempDir Path dir;

  @BeforeAll
  static void writeHost() throws Exception {
    host = hostDir.resolve("tiny.onnx");
    Files.write(host, TinyBertHost.host(3).model().toByteArray());
  }

  private static void writeGraphs(CompiledGraft graft, Path folder) throws Exception {
    Files.createDirectories(folder);
    String n = graft.name();
    Files.write(folder.resolve(n + CompiledGraft.INFERENCE_SUFFIX), graft.inference().toByteArray());
    Files.write(folder.resolve(n + CompiledGraft.TRAIN_SUFFIX), graft.train().toByteArray());
    Files.write(folder.resolve(n + CompiledGraft.UPDATE_SUFFIX), graft.update().toByteArray());
    Files.write(folder.resolve(n + CompiledGraft.MERGE_SUFFIX), graft.merge().toByteArray());
    Files.writeString(folder.resolve(n + CompiledGraft.MANIFEST_SUFFIX), graft.manifestText());
  }

  private static ModelOptions options() {
    return ModelOptions.defaults().withHost(host).withTraining(false);
  }

  /** Writes graft {@code name} of {@code kind} into graphs/ and, unless {@code adapter} is null, a random adapter for it; its ΔW. */
  private AdapterDelta graft(String name, String kind, int rank, long seed, Path adapter) throws Exception {
    CompiledGraft g = Graft.host(HostModel.read(host)).name(name)
        .adapter(kind, "", o -> o.set("rank", rank).set("alpha", 2.0 * rank)).classification(2).compile();
    writeGraphs(g, dir.resolve("graphs"));
    try (AdapterModel m = AdapterModel.open(Graft.graphs(g), options())) {
      Random r = new Random(seed);
      for (Parameter p : m.getParameters()) {
        float[] v = m.getParameter(p.getName());
        for (int i = 0; i < v.length; i++) {
          v[i] += (float) (0.3 * r.nextGaussian());
        }
        m.setParameter(p.getName(), v);
      }
      if (adapter != null) {
        m.saveAdapter(adapter);
      }
      return m.delta(name);
    }
  }

  private static int run(ByteArrayOutputStream err, String... args) {
    return MergeCommand.run(args, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
  }

  @Test
  void mergesALoraAndALohaIntoAPeftFolderAndAMergedModel() throws Exception {
    AdapterDelta lora = graft("Lora", "lora", 2, 3, dir.resolve("a"));
    AdapterDelta loha = graft("Loha", "loha", 2, 4, dir.resolve("b"));
    graft("Target", "lora", 8, 5, null);
    String g = dir.resolve("graphs").toString();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    List<String> common = List.of("--method", "cat", "--host", host.toString(), "--graft", g + "/Lora", "--input",
        dir.resolve("a") + "=0.25", "--graft", g + "/Loha", "--input", dir.resolve("b") + "=-2", "--target",
        g + "/Target");
    List<String> peft = new java.util.ArrayList<>(common);
    peft.addAll(List.of("--rank", "8", "--out-peft", dir.resolve("merged").toString()));
    assertEquals(MergeCommand.OK, run(err, peft.toArray(String[]::new)), err.toString());
    JsonObject config = JsonParser.parseString(Files.readString(dir.resolve("merged/adapter_config.json")))
        .getAsJsonObject();
    assertEquals("cat", config.getAsJsonObject("graft_merge").get("method").getAsString());
    assertEquals(8, config.get("r").getAsInt());
    try (AdapterModel t = AdapterModel.open(dev.graft.runtime.AdapterGraphs.fromDirectory(dir.resolve("graphs"),
        "Target"), options())) {
      t.loadAdapter(dir.resolve("merged"));
      AdapterDelta got = t.delta("merged");
      for (SiteDelta d : got.sites().values()) {
        double[] w = d.weight();
        double[] x = lora.sites().get(d.site()).weight();
        double[] y = loha.sites().get(d.site()).weight();
        for (int i = 0; i < w.length; i++) {
          assertEquals(0.25 * x[i] - 2 * y[i], w[i], 1e-5, d.site() + " [" + i + "]");
        }
      }
    }
    List<String> onnx = new java.util.ArrayList<>(common);
    onnx.addAll(List.of("--out-onnx", dir.resolve("onnx").toString()));
    assertEquals(MergeCommand.OK, run(err, onnx.toArray(String[]::new)), err.toString());
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(dir.resolve("onnx/model.onnx")));
    assertTrue(m.getMetadataPropsList().stream().anyMatch(e -> e.getKey().equals("graft_merge")));
  }

  @Test
  void aDenseResultForAPeftFolderWithoutARankIsR133() throws Exception {
    graft("Lora", "lora", 2, 3, dir.resolve("a"));
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    String g = dir.resolve("graphs").toString();
    assertEquals(MergeCommand.FAILED, run(err, "--method", "ties", "--host", host.toString(), "--graft", g + "/Lora",
        "--input", dir.resolve("a").toString(), "--input", dir.resolve("a") + "=0.5", "--out-peft",
        dir.resolve("out").toString()));
    assertTrue(err.toString().contains("[GRAFT-R133]") && err.toString().contains("toRank(2)"), err.toString());
    assertTrue(Files.notExists(dir.resolve("out")), "nothing written");
  }

  @Test
  void badArgumentsGiveTheUsage() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(MergeCommand.USAGE, run(err, "--input", "x"));
    assertTrue(err.toString().contains("expected a --graft or --resource before it"), err.toString());
    assertTrue(err.toString().contains("usage: MergeCommand"), err.toString());
    assertTrue(err.toString().contains("ab_linear        APPROXIMATE"), err.toString());
    err.reset();
    assertEquals(MergeCommand.USAGE, run(err, "--method", "average", "--out-peft", "o"));
    assertTrue(err.toString().contains("[GRAFT-R130]"), err.toString());
    err.reset();
    assertEquals(MergeCommand.USAGE, run(err, "--method", "ties", "--density", "0"));
    assertTrue(err.toString().contains("[GRAFT-R132] density must be in (0, 1], got 0.0"), err.toString());
    assertEquals(MergeCommand.USAGE, run(err, "--method", "linear", "--rank", "two"));
    assertEquals(MergeCommand.USAGE, run(err, "--method", "linear", "--frobnicate"));
  }
}
