package dev.graft.tools.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.train.CheckpointAverage;
import dev.graft.runtime.train.CheckpointKeeper;
import dev.graft.runtime.train.KeptCheckpoints;
import dev.graft.runtime.train.MetricsWeighting;
import dev.graft.runtime.train.Trainer;
import dev.graft.testing.TinyBertHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checkpoint mode of {@code graft merge} on the tiny BERT: a LoRA trained for 6 steps with the
 * last 4 checkpoints kept, averaged by the command in parameter space (a PEFT folder carrying its
 * provenance, equal to {@link CheckpointAverage}'s own) and in ΔW space (a merged ONNX model).
 */
class CheckpointMergeCommandTest {
  @TempDir static Path root;
  private static Path host;
  private static CompiledGraft graft;
  private static Path kept;

  @BeforeAll
  static void train() throws Exception {
    host = root.resolve("tiny.onnx");
    Files.write(host, TinyBertHost.host(3).model().toByteArray());
    graft = Graft.host(host).name("Tiny").lora("", o -> o.rank(2)).classification(2).compile();
    Path graphs = root.resolve("graphs");
    Files.createDirectories(graphs);
    Files.write(graphs.resolve("Tiny" + CompiledGraft.INFERENCE_SUFFIX), graft.inference().toByteArray());
    Files.write(graphs.resolve("Tiny" + CompiledGraft.TRAIN_SUFFIX), graft.train().toByteArray());
    Files.write(graphs.resolve("Tiny" + CompiledGraft.UPDATE_SUFFIX), graft.update().toByteArray());
    Files.write(graphs.resolve("Tiny" + CompiledGraft.MERGE_SUFFIX), graft.merge().toByteArray());
    Files.writeString(graphs.resolve("Tiny" + CompiledGraft.MANIFEST_SUFFIX), graft.manifestText());
    Random r = new Random(1);
    List<Example> data = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      long[] ids = new long[5];
      for (int j = 0; j < ids.length; j++) {
        ids[j] = 1 + r.nextInt(40);
      }
      data.add(new Example(Map.of("input_ids", ids, "attention_mask", new long[] {1, 1, 1, 1, 1},
          "token_type_ids", new long[5]), i % 2));
    }
    kept = root.resolve("kept");
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      Trainer.builder().batchSize(4).epochs(2).learningRate(0.05f).progress(null)
          .listener(CheckpointKeeper.into(kept).keepLast(4).build()).build().fit(model, data, List.of());
    }
    assertEquals(4, KeptCheckpoints.read(kept).checkpoints().size());
  }

  private static int run(ByteArrayOutputStream out, ByteArrayOutputStream err, String... args) {
    return CheckpointMergeCommand.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
  }

  private static String[] common(String... more) {
    List<String> a = new ArrayList<>(List.of("--graft", root.resolve("graphs/Tiny").toString(), "--host", host.toString(),
        "--checkpoints", kept.toString()));
    a.addAll(List.of(more));
    return a.toArray(String[]::new);
  }

  @Test
  void averagesInParameterSpaceIntoAFolderThatCarriesItsProvenance() throws Exception {
    Path out = root.resolve("averaged");
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    assertEquals(CheckpointMergeCommand.OK,
        run(o, e, common("--last", "3", "--weighting", "step", "--p", "2", "--out-peft", out.toString())), e.toString());
    String printed = o.toString(StandardCharsets.UTF_8);
    // steps 4, 5, 6 with p = 2: 16/77, 25/77, 36/77
    assertTrue(printed.contains("step 4 ") && printed.contains(String.format(java.util.Locale.ROOT, "weight %.6f", 36 / 77.0)),
        printed);
    JsonObject p = PeftAdapters.readConfig(out).getAsJsonObject("graft_merge");
    assertEquals("checkpoint-average", p.get("method").getAsString());
    assertEquals("parameters", p.get("space").getAsString());
    assertEquals("step", p.get("metric").getAsString());
    assertEquals(3, p.getAsJsonArray("inputs").size());
    try (AdapterModel direct = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host));
        AdapterModel loaded = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      CheckpointAverage.of(KeptCheckpoints.read(kept).last(3), MetricsWeighting.step(2)).inParameters(direct);
      loaded.loadAdapter(out);
      for (var param : direct.getParameters()) {
        assertArrayEquals(direct.getParameter(param.getName()), loaded.getParameter(param.getName()), 0f);
      }
    }
  }

  @Test
  void averagesInDeltaSpaceIntoAMergedModel() throws Exception {
    Path out = root.resolve("merged");
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    assertEquals(CheckpointMergeCommand.OK,
        run(o, e, common("--space", "delta-w", "--weighting", "loss", "--p", "1", "--out-onnx", out.toString())),
        e.toString());
    assertTrue(o.toString(StandardCharsets.UTF_8).contains("(ΔW space, linear) as a merged ONNX model"), o.toString());
    var model = dev.graft.spec.onnx.Onnx.ModelProto.parseFrom(Files.readAllBytes(out.resolve("model.onnx")));
    String provenance = model.getMetadataPropsList().stream().filter(m -> m.getKey().equals("graft_merge"))
        .findFirst().orElseThrow().getValue();
    JsonObject p = com.google.gson.JsonParser.parseString(provenance).getAsJsonObject();
    assertEquals("checkpoint-average", p.get("method").getAsString());
    assertEquals("delta_w", p.get("space").getAsString());
    assertEquals("1/train_loss", p.get("metric").getAsString());
    assertEquals(4, p.getAsJsonArray("inputs").size());
    assertEquals("linear", p.getAsJsonObject("merge").get("method").getAsString());
    assertTrue(provenance.contains("step-00000006.safetensors"), provenance);
  }

  @Test
  void aDeltaAverageReRankedIsAPeftFolderCarryingTheWholeProvenance() throws Exception {
    Path out = root.resolve("reranked");
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    assertEquals(CheckpointMergeCommand.OK, run(o, e, common("--last", "2", "--space", "delta-w", "--weighting",
        "step", "--p", "1", "--rank", "2", "--out-peft", out.toString())), e.toString());
    JsonObject p = PeftAdapters.readConfig(out).getAsJsonObject("graft_merge");
    assertEquals("delta_w", p.get("space").getAsString());
    assertEquals(2, p.getAsJsonObject("merge").get("rank").getAsInt());
    assertEquals(6, p.getAsJsonArray("inputs").get(1).getAsJsonObject().get("step").getAsLong());
    try (AdapterModel loaded = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      loaded.loadAdapter(out);
    }
  }

  @Test
  void graftMergeWithCheckpointsIsTheCheckpointMode() throws Exception {
    Path out = root.resolve("through-merge");
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    assertEquals(MergeCommand.OK, MergeCommand.run(common("--weighting", "uniform", "--out-peft", out.toString()),
        new PrintStream(o, true, StandardCharsets.UTF_8), new PrintStream(e, true, StandardCharsets.UTF_8)),
        e.toString());
    assertEquals(0.0, PeftAdapters.readConfig(out).getAsJsonObject("graft_merge").get("exponent").getAsDouble());
    assertTrue(o.toString(StandardCharsets.UTF_8).contains("weight 0.250000"), o.toString());
  }

  @Test
  void badArgumentsGiveTheUsageAndABrokenFolderItsCode() throws Exception {
    ByteArrayOutputStream o = new ByteArrayOutputStream();
    ByteArrayOutputStream e = new ByteArrayOutputStream();
    assertEquals(CheckpointMergeCommand.USAGE, run(o, e, common()));
    assertTrue(e.toString().contains("expected one of --out-peft and --out-onnx, given neither"), e.toString());
    assertTrue(e.toString().contains("usage: CheckpointMergeCommand"), e.toString());
    e.reset();
    assertEquals(CheckpointMergeCommand.USAGE, run(o, e, common("--weighting", "median", "--out-peft", "x")));
    assertTrue(e.toString().contains("--weighting must be uniform, loss, step or held-out"), e.toString());
    assertEquals(CheckpointMergeCommand.USAGE, run(o, e, common("--rank", "2", "--out-peft", "x")));
    assertEquals(CheckpointMergeCommand.USAGE, run(o, e, common("--p", "-1", "--out-peft", "x")));
    e.reset();
    Path broken = root.resolve("broken");
    Files.createDirectories(broken);
    Files.writeString(broken.resolve("index.json"), "{\"format\": \"graft-kept-checkpoints-1\"}");
    assertEquals(CheckpointMergeCommand.FAILED, run(o, e, "--graft", root.resolve("graphs/Tiny").toString(),
        "--checkpoints", broken.toString(), "--out-peft", root.resolve("never").toString()));
    assertTrue(e.toString().contains("[GRAFT-R140]"), e.toString());
    assertTrue(Files.notExists(root.resolve("never")));
  }
}
