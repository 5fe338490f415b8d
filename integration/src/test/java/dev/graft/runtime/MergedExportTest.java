package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.AdapterOptions;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.export.ExternalDataWriter;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The merged export of every linear-site kind on the tiny host with MatMul and Gemm
 * ({@code transB=1}) sites, random non-zero parameters: the exported {@code model.onnx} run by a
 * bare ONNX Runtime in a forked JVM with only the onnxruntime jar on its class path equals {@code
 * predict} within 1e-5, and has no graph input but the host's.
 */
class MergedExportTest {
  private static final int LABELS = 3;
  @TempDir static Path hostDir;
  private static Path host;
  @TempDir Path dir;

  @BeforeAll
  static void writeHost() throws Exception {
    host = ExportFixtures.sitesHost(hostDir);
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(host));
  }

  /** Exports {@code graft} with random parameters and compares the bare run with predict; returns the exported model. */
  private ModelProto check(String label, CompiledGraft graft, ExportOptions options) throws Exception {
    float[][] expected;
    float[][] plain;
    Path out = dir.resolve("export");
    try (AdapterModel model = open(graft)) {
      plain = model.predict(ExportFixtures.inputs());
      ExportFixtures.randomize(model, 11);
      expected = model.predict(ExportFixtures.inputs());
      model.exportMerged(out, options);
    }
    ExportFixtures.BareResult r = ExportFixtures.bareRun(out.resolve(options.modelFile()), ExportFixtures.inputs(), dir);
    assertEquals(List.of("attention_mask", "input_ids"), r.inputs().stream().sorted().toList(), label + ": host inputs only");
    float[][] got = r.rows(graft.manifest().getLogits(), LABELS);
    double worst = ExportFixtures.maxDifference(expected, got);
    double change = ExportFixtures.maxDifference(expected, plain);
    System.out.printf("MergedExportTest %-28s max |export − predict| %.3g (the adapter moves predict by %.3g)%n",
        label, worst, change);
    assertTrue(change > 1e-2, label + ": the adapter changes the predictions (" + change + ")");
    assertTrue(worst <= 1e-5, label + ": max |export − predict| " + worst);
    return ModelProto.parseFrom(Files.readAllBytes(out.resolve(options.modelFile())));
  }

  private ModelProto check(String kind, String target, Consumer<AdapterOptions> options) throws Exception {
    CompiledGraft graft = Graft.host(host).adapter(kind, target, options::accept).classification(LABELS).compile();
    return check(kind + " " + target, graft, ExportOptions.defaults().withRequireMerged(true));
  }

  /** Every weight of the model is external data in model.onnx.data at a 64-byte aligned offset. */
  private static void assertAllExternal(ModelProto m) {
    for (TensorProto t : m.getGraph().getInitializerList()) {
      if (t.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
        assertTrue(t.getRawData().size() <= 4 * 64 && t.getFloatDataCount() <= 64, t.getName() + " is a small constant");
        continue;
      }
      Map<String, String> e = new java.util.HashMap<>();
      for (StringStringEntryProto x : t.getExternalDataList()) {
        e.put(x.getKey(), x.getValue());
      }
      assertEquals("model.onnx.data", e.get("location"), t.getName());
      assertEquals(0, Long.parseLong(e.get("offset")) % 64, t.getName() + " aligned");
    }
  }

  @Test
  void loraOnMatMulAndTransposedGemmSitesNeedsNoAdapterNodes() throws Exception {
    ModelProto m = check("lora", ExportFixtures.ALL_SITES, o -> o.set("rank", 2).set("alpha", 6.0));
    assertAllExternal(m);
    assertTrue(m.getGraph().getNodeList().stream().noneMatch(n -> n.getName().contains("/lora")), "no LoRA node left");
    assertTrue(m.getGraph().getInitializerList().stream().anyMatch(
        t -> t.getName().equals("merged/encoder.layer.0.attention.self.value/weight")));
    assertTrue(m.getGraph().getInitializerList().stream().noneMatch(t -> t.getName().equals("value.weight")),
        "the host weight a merged copy replaces is not exported");
  }

  /** The real all-MiniLM-L6-v2 (from its Maven jar): LoRA r8 on query and value, merged, in a bare session. */
  @Test
  void loraOnMiniLm() throws Exception {
    String name = "all-minilm-l6-v2.onnx";
    dev.graft.compiler.HostModel miniLm;
    try (java.io.InputStream in = MergedExportTest.class.getClassLoader().getResourceAsStream(name)) {
      miniLm = dev.graft.compiler.HostModel.read(in, name);
    }
    CompiledGraft graft = Graft.host(miniLm).lora("", o -> o.rank(8)).classification(2).compile();
    Map<String, long[][]> inputs = new java.util.LinkedHashMap<>();
    inputs.put("input_ids", new long[][] {{101, 2023, 3185, 2001, 2307, 102}, {101, 6659, 2143, 102, 0, 0}});
    inputs.put("attention_mask", new long[][] {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}});
    inputs.put("token_type_ids", new long[2][6]);
    Path out = dir.resolve("minilm");
    float[][] expected;
    float[][] plain;
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3))) {
      plain = model.predict(inputs);
      ExportFixtures.randomize(model, 17, 0.05);
      expected = model.predict(inputs);
      model.exportMerged(out, ExportOptions.defaults().withRequireMerged(true));
    }
    ExportFixtures.BareResult r = ExportFixtures.bareRun(out.resolve("model.onnx"), inputs, dir);
    float[][] got = r.rows(graft.manifest().getLogits(), 2);
    double worst = ExportFixtures.maxDifference(expected, got);
    double change = ExportFixtures.maxDifference(expected, plain);
    System.out.printf("MergedExportTest MiniLM LoRA r8 query,value   max |export − predict| %.3g (the adapter moves predict by %.3g)%n",
        worst, change);
    assertTrue(change > 1e-2, "the adapter changes the predictions (" + change + ")");
    assertTrue(worst <= 1e-5, "max |export − predict| " + worst);
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(out.resolve("model.onnx")));
    assertAllExternal(m);
    assertTrue(m.getSerializedSize() < 1 << 20, "the weights are not in the protobuf (" + m.getSerializedSize() + " bytes)");
    assertTrue(Files.size(out.resolve("model.onnx.data")) > 80_000_000L, "the weights are beside it");
    assertTrue(m.getGraph().getNodeList().stream().noneMatch(n -> n.getName().contains("/lora")), "no LoRA node left");
  }

  @Test
  void rsLora() throws Exception {
    check("lora", ExportFixtures.ALL_SITES, o -> o.set("rank", 4).set("alpha", 6.0).set("rslora", true));
  }

  @Test
  void dora() throws Exception {
    check("lora", ExportFixtures.MATMUL_SITES, o -> o.set("rank", 2).set("dora", true));
  }

  @Test
  void pissa() throws Exception {
    check("lora", ExportFixtures.MATMUL_SITES, o -> o.set("rank", 2).set("init", "pissa"));
  }

  @Test
  void dyLora() throws Exception {
    check("dylora", ExportFixtures.ALL_SITES, o -> o.set("rank", 3).set("alpha", 6.0));
  }

  @Test
  void lokr() throws Exception {
    check("lokr", ExportFixtures.ALL_SITES, o -> o.set("rank", 1).set("alpha", 3.0));
  }

  @Test
  void loha() throws Exception {
    check("loha", ExportFixtures.ALL_SITES, o -> o.set("rank", 2).set("alpha", 4.0));
  }

  @Test
  void vera() throws Exception {
    check("vera", ExportFixtures.ALL_SITES, o -> o.set("rank", 4));
  }

  @Test
  void ia3ScalesWeightsAndBiases() throws Exception {
    ModelProto m = check("ia3", ExportFixtures.ALL_SITES, o -> {});
    assertTrue(m.getGraph().getInitializerList().stream().anyMatch(
        t -> t.getName().equals("merged/encoder.layer.0.attention.self.key/bias")));
  }

  @Test
  void dyLoraAtALowerRankEqualsTheTruncatedModel() throws Exception {
    CompiledGraft graft = Graft.host(host).dylora(ExportFixtures.ALL_SITES, o -> o.rank(4).alpha(8.0))
        .classification(LABELS).compile();
    Path out = dir.resolve("export");
    float[][] expected;
    try (AdapterModel model = open(graft)) {
      ExportFixtures.randomize(model, 5);
      model.exportMerged(out, ExportOptions.defaults().withDyLoraRank(2));
      model.truncateRank(2);
      expected = model.predict(ExportFixtures.inputs());
    }
    float[][] got = ExportFixtures.bareRun(out.resolve("model.onnx"), ExportFixtures.inputs(), dir)
        .rows(graft.manifest().getLogits(), LABELS);
    assertTrue(ExportFixtures.maxDifference(expected, got) <= 1e-5, "rank 2: " + ExportFixtures.maxDifference(expected, got));
  }

  @Test
  void withoutTheHeadItOutputsTheAdaptedHiddenStates() throws Exception {
    CompiledGraft graft = Graft.host(host).lora(ExportFixtures.ALL_SITES, o -> o.rank(2)).classification(LABELS).compile();
    Path out = dir.resolve("export");
    try (AdapterModel model = open(graft)) {
      ExportFixtures.randomize(model, 7);
      model.exportMerged(out, ExportOptions.defaults().withHead(false).withModelFile("encoder.onnx"));
    }
    assertTrue(Files.exists(out.resolve("encoder.onnx.data")));
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(out.resolve("encoder.onnx")));
    assertEquals(List.of("last_hidden_state"), m.getGraph().getOutputList().stream().map(o -> o.getName()).toList());
    assertTrue(m.getGraph().getInitializerList().stream().noneMatch(t -> t.getName().startsWith("classifier")), "no head");
    ExportFixtures.BareResult r = ExportFixtures.bareRun(out.resolve("encoder.onnx"), ExportFixtures.inputs(), dir);
    assertEquals(2 * 5 * ExportFixtures.WIDE, r.outputs().get("last_hidden_state").length);
  }

  /**
   * A host weight two nodes read (tied, as an LM head reuses its embedding): LoRA on one of them
   * gets a merged copy under a new name, the other keeps reading the host's weight.
   */
  @Test
  void aTiedWeightKeepsItsValueForTheOtherNode() throws Exception {
    java.util.Random r = new java.util.Random(9);
    dev.graft.compiler.ir.Graph g = new dev.graft.compiler.ir.Graph();
    var bs = List.of(dev.graft.compiler.ir.Dim.symbol("batch"), dev.graft.compiler.ir.Dim.symbol("sequence"));
    g.addInput("input_ids", dev.graft.compiler.ir.TensorType.of(dev.graft.compiler.ir.TensorType.INT64, bs));
    g.addInput("attention_mask", dev.graft.compiler.ir.TensorType.of(dev.graft.compiler.ir.TensorType.INT64, bs));
    String h = g.op("/embeddings/Gather", "Gather",
        List.of(ExportFixtures.weight(g, r, "embeddings.weight", 1, 20, 66), "input_ids"));
    String tied = ExportFixtures.weight(g, r, "tied.weight", 0.15, 66, 66);
    String q = g.op("/encoder/layer.0/attention/self/query/MatMul", "MatMul", List.of(h, tied));
    String o = g.op("/encoder/layer.0/output/tied/MatMul", "MatMul", List.of(h, tied));
    g.opTo("last_hidden_state", "/encoder/Add", "Add", List.of(g.op("/encoder/Tanh", "Tanh", List.of(q)), o));
    g.outputs().add("last_hidden_state");
    dev.graft.compiler.ir.ShapeInference.run(g);
    Path tiedHost = dir.resolve("tied.onnx");
    Files.write(tiedHost, dev.graft.compiler.ir.OnnxExport.write(g, "tied").toByteArray());
    CompiledGraft graft = Graft.host(tiedHost).lora(".*/query/MatMul", x -> x.rank(2)).classification(LABELS).compile();
    Path out = dir.resolve("export");
    float[][] expected;
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(tiedHost))) {
      ExportFixtures.randomize(model, 21);
      expected = model.predict(ExportFixtures.inputs());
      model.exportMerged(out, ExportOptions.defaults().withRequireMerged(true));
    }
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(out.resolve("model.onnx")));
    List<String> names = m.getGraph().getInitializerList().stream().map(TensorProto::getName).toList();
    assertTrue(names.contains("tied.weight") && names.contains("merged/encoder.layer.0.attention.self.query/weight"), names.toString());
    float[][] got = ExportFixtures.bareRun(out.resolve("model.onnx"), ExportFixtures.inputs(), dir)
        .rows(graft.manifest().getLogits(), LABELS);
    assertTrue(ExportFixtures.maxDifference(expected, got) <= 1e-5, "tied: " + ExportFixtures.maxDifference(expected, got));
  }

  /**
   * LoRA on a tied LM head that reads the embedding table through a Transpose ({@code
   * MatMul(h, Transpose(wte))}, the tiny GPT-2 unfolded): the merged export gives the head its own
   * weight {@code merged/lm_head/weight} (read through a new Transpose), and {@code wte} keeps its
   * value for the embedding lookup: the bare run's logits equal predictSequence's within 1e-5.
   */
  @Test
  void anUnfoldedTiedLmHeadGetsItsOwnMergedWeight() throws Exception {
    Path gpt2 = dir.resolve("tiny-gpt2.onnx");
    Files.write(gpt2, dev.graft.compiler.ir.OnnxExport.write(
        dev.graft.testing.TinyGpt2Host.graph(5), "tiny-gpt2").toByteArray());
    CompiledGraft graft = Graft.host(gpt2).lora("/lm_head/MatMul", x -> x.rank(2))
        .causalLm(o -> o.output(dev.graft.testing.TinyDecoderHost.LM_OUTPUT)).compile();
    assertEquals("transformer.wte.weight", graft.manifest().getSiteUpdates(0).getHostWeight());
    assertTrue(graft.manifest().getSiteUpdates(0).getTransposed());
    Map<String, long[][]> inputs = Map.of("input_ids", new long[][] {{3, 17, 22, 8, 1}, {4, 11, 30, 2, 7}},
        "attention_mask", new long[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 1}});
    Path out = dir.resolve("export");
    float[][] plain;
    float[][] expected;
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(gpt2))) {
      plain = rows(model.predictSequence(inputs));
      ExportFixtures.randomize(model, 21);
      expected = rows(model.predictSequence(inputs));
      model.exportMerged(out, ExportOptions.defaults().withRequireMerged(true));
    }
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(out.resolve("model.onnx")));
    List<String> names = m.getGraph().getInitializerList().stream().map(TensorProto::getName).toList();
    assertTrue(names.contains("transformer.wte.weight") && names.contains("merged/lm_head/weight"), names.toString());
    float[][] got = ExportFixtures.bareRun(out.resolve("model.onnx"), inputs, dir).rows(graft.manifest().getLogits(), expected[0].length);
    double worst = ExportFixtures.maxDifference(expected, got);
    double change = ExportFixtures.maxDifference(expected, plain);
    System.out.printf("MergedExportTest unfolded tied LM head: max |export − predict| %.3g (the adapter moves the"
        + " logits by %.3g)%n", worst, change);
    assertTrue(change > 1e-2, "the adapter changes the logits: " + change);
    assertTrue(worst <= 1e-5, "unfolded tied head: " + worst);
  }

  /** [batch][sequence][vocab] as rows of vocab. */
  private static float[][] rows(float[][][] logits) {
    return java.util.Arrays.stream(logits).flatMap(java.util.Arrays::stream).toArray(float[][]::new);
  }

  /** A bottleneck has no merged form: refused under requireMerged, else exported as an adapter beside a merged LoRA. */
  @Test
  void aBottleneckIsRefusedWhenMergedIsRequiredAndExportedUnmergedOtherwise() throws Exception {
    CompiledGraft graft = Graft.host(host)
        .bottleneck(".*/query/MatMul", o -> {})
        .lora(".*/key/MatMul", o -> o.rank(2))
        .classification(LABELS).compile();
    try (AdapterModel model = open(graft)) {
      GraftException e = assertThrows(GraftException.class,
          () -> model.exportMerged(dir.resolve("refused"), ExportOptions.defaults().withRequireMerged(true)));
      assertTrue(e.getMessage().startsWith("[GRAFT-R050]"), e.getMessage());
      assertTrue(e.getMessage().contains("bottleneck at [encoder.layer.0.attention.self.query]"), e.getMessage());
      assertFalse(Files.exists(dir.resolve("refused")), "nothing written");
    }
    ModelProto m = check("bottleneck + lora, allowed", graft, ExportOptions.defaults());
    assertTrue(m.getGraph().getNodeList().stream().anyMatch(n -> n.getName().contains("/query/adapter/")), "the bottleneck stays");
    assertTrue(m.getGraph().getNodeList().stream().noneMatch(n -> n.getName().contains("/lora")), "the LoRA is merged");
  }

  @Test
  void graphsWithoutTheExportVariantsAreRefused() {
    CompiledGraft graft = Graft.host(host).lora(ExportFixtures.ALL_SITES, o -> o.rank(2)).classification(LABELS).compile();
    AdapterGraphs old = AdapterGraphs.of(graft.manifest(), graft.inference().toByteArray(), graft.train().toByteArray());
    try (AdapterModel model = AdapterModel.open(old, ModelOptions.defaults().withHost(host))) {
      GraftException e = assertThrows(GraftException.class, () -> model.exportMerged(dir.resolve("x"), ExportOptions.defaults()));
      assertEquals(RuntimeErrorCode.EXPORT_UNSUPPORTED.code(), e.getCode());
      assertTrue(e.getMessage().contains("recompile"), e.getMessage());
    }
  }

  /**
   * The writer's arithmetic past 2 GB without writing 2 GB: a channel that counts bytes and
   * keeps none, a mocked 2.5 GB tensor between two small ones.
   */
  @Test
  void externalDataOffsetsPastTwoGigabytesAreLongAndAligned() throws Exception {
    long[] size = {0};
    java.nio.channels.WritableByteChannel counting = new java.nio.channels.WritableByteChannel() {
      @Override
      public int write(java.nio.ByteBuffer src) {
        int n = src.remaining();
        src.position(src.limit());
        size[0] += n;
        return n;
      }

      @Override
      public boolean isOpen() {
        return true;
      }

      @Override
      public void close() {}
    };
    long[] progress = {0};
    ExternalDataWriter w = new ExternalDataWriter(counting, "model.onnx.data", p -> progress[0] = p);
    TensorProto first = w.write("a", 1, new long[] {3}, java.nio.ByteBuffer.allocate(12));
    long big = 2_500_000_001L;
    java.nio.ByteBuffer chunk = java.nio.ByteBuffer.allocate(1 << 24);
    TensorProto second = w.write("big", 2, new long[] {big}, big, ch -> {
      for (long left = big; left > 0; ) {
        chunk.clear().limit((int) Math.min(chunk.capacity(), left));
        left -= ch.write(chunk);
      }
    });
    TensorProto third = w.write("c", 1, new long[] {1}, java.nio.ByteBuffer.allocate(4));
    assertEquals("0", value(first, "offset"));
    assertEquals("64", value(second, "offset"));
    assertEquals(Long.toString(big), value(second, "length"));
    long expectedThird = (64 + big + 63) / 64 * 64;
    assertEquals(Long.toString(expectedThird), value(third, "offset"));
    assertTrue(expectedThird > Integer.MAX_VALUE);
    assertEquals(expectedThird + 4, size[0], "padding and data written");
    assertEquals(expectedThird + 4, progress[0]);
    assertEquals(TensorProto.DataLocation.EXTERNAL, second.getDataLocation());
    assertEquals(big, second.getDims(0));
    GraftException e = assertThrows(GraftException.class,
        () -> w.write("short", 1, new long[] {2}, 8, ch -> ch.write(java.nio.ByteBuffer.allocate(4))));
    assertTrue(e.getMessage().contains("expected 8 bytes"), e.getMessage());
    assertEquals(expectedThird + 4, w.position(), "a failed tensor is not declared");
  }

  private static String value(TensorProto t, String key) {
    return t.getExternalDataList().stream().filter(x -> x.getKey().equals(key)).findFirst().orElseThrow().getValue();
  }
}
