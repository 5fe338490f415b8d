package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.export.UnmergedExport;
import dev.graft.spec.manifest.ExportDefault;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import dev.graft.testing.TinyBertHost;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The unmerged export for every kind, through ONNX Runtime: with the adapter fed (every adapter
 * parameter under its export name, the trained random values) it equals {@code predict} within
 * 1e-5; with nothing fed (the defaults: empty along {@code lora_r}, or the kind's identity) it
 * equals the host with the same head (a head-only graft) within 1e-5; prompt
 * tuning, which has no identity value, defaults to the exported prompt. ONNX Runtime's Java API
 * refuses to feed a graph input that has an initializer, so the fed run uses a copy of the model
 * without the default initializers (what {@code OrtLoraAdapter} overrides natively).
 */
class UnmergedExportTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int LABELS = 3;
  private static final long[][] IDS = {{3, 7, 12, 8, 1}, {5, 9, 13, 2, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}};
  private static final String FFN = ".*/layer\\.[01]/(attention/self/(query|value)|intermediate/dense|output/dense)/MatMul";
  @TempDir static Path hostDir;
  private static Path sites;
  private static Path bert;
  @TempDir Path dir;

  @BeforeAll
  static void writeHosts() throws Exception {
    sites = ExportFixtures.sitesHost(hostDir);
    bert = hostDir.resolve("tiny-bert.onnx");
    Files.write(bert, TinyBertHost.host(3).model().toByteArray());
  }

  private static Map<String, long[][]> inputs(Path host) {
    if (host.equals(sites)) {
      return ExportFixtures.inputs();
    }
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    m.put("token_type_ids", new long[2][5]);
    return m;
  }

  private static AdapterModel open(CompiledGraft graft, Path host) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(host));
  }

  private void check(String label, Path host, UnaryOperator<Graft> adapters) throws Exception {
    CompiledGraft graft = adapters.apply(Graft.host(host)).classification(LABELS).compile();
    Path out = dir.resolve("export");
    Map<String, float[]> values;
    float[][] adapted;
    float[][] identity;
    try (AdapterModel model = open(graft, host)) {
      ExportFixtures.randomize(model, 13);
      values = model.getParameterValues();
      adapted = model.predict(inputs(host));
      model.exportUnmerged(out, ExportOptions.defaults());
    }
    boolean hasIdentity = graft.manifest().getParametersList().stream()
        .noneMatch(p -> p.getExportDefault() == ExportDefault.EXPORT_DEFAULT_CURRENT);
    if (hasIdentity) {
      // The host with the same head: a head-only graft (its head's parameters are named alike).
      try (AdapterModel plain = open(Graft.host(host).classification(LABELS).compile(), host)) {
        for (Parameter p : plain.getParameters()) {
          assertTrue(p.getRole() == ParameterRole.HEAD_WEIGHT || p.getRole() == ParameterRole.HEAD_BIAS, p.getName());
          plain.setParameter(p.getName(), values.get(p.getName()));
        }
        identity = plain.predict(inputs(host));
      }
    } else {
      identity = adapted;
    }
    ModelProto exported = ModelProto.parseFrom(Files.readAllBytes(out.resolve("model.onnx")));
    Set<String> adapterInputs = new HashSet<>();
    Map<String, float[]> feeds = new HashMap<>();
    Map<String, long[]> shapes = new HashMap<>();
    for (Parameter p : graft.manifest().getParametersList()) {
      if (p.getAdapter() > 0) {
        adapterInputs.add(p.getExportName());
        feeds.put(p.getExportName(), values.get(p.getName()));
        shapes.put(p.getExportName(), p.getShapeList().stream().mapToLong(Long::longValue).toArray());
        ValueInfoProto in = exported.getGraph().getInputList().stream().filter(i -> i.getName().equals(p.getExportName()))
            .findFirst().orElseThrow(() -> new AssertionError(label + ": no input " + p.getExportName()));
        if (p.getExportRankAxis() > 0) {
          assertEquals(UnmergedExport.RANK_DIM,
              in.getType().getTensorType().getShape().getDim(p.getExportRankAxis() - 1).getDimParam(), p.getExportName());
        }
      }
    }
    float[][] none = run(out.resolve("model.onnx"), graft, inputs(host), Map.of(), Map.of());
    ModelProto.Builder stripped = exported.toBuilder();
    stripped.getGraphBuilder().clearInitializer().addAllInitializer(exported.getGraph().getInitializerList().stream()
        .filter(t -> !adapterInputs.contains(t.getName())).toList());
    Path fedModel = out.resolve("fed.onnx");
    Files.write(fedModel, stripped.build().toByteArray());
    float[][] fed = run(fedModel, graft, inputs(host), feeds, shapes);

    double fedWorst = ExportFixtures.maxDifference(adapted, fed);
    double noneWorst = ExportFixtures.maxDifference(identity, none);
    double change = ExportFixtures.maxDifference(adapted, identity);
    System.out.printf("UnmergedExportTest %-26s fed vs predict %.3g, none fed vs %s %.3g (the adapter moves it by %.3g)%n",
        label, fedWorst, hasIdentity ? "host" : "predict", noneWorst, change);
    assertTrue(fedWorst <= 1e-5, label + ": fed vs predict " + fedWorst);
    assertTrue(noneWorst <= 1e-5, label + ": none fed vs " + (hasIdentity ? "the host" : "predict") + " " + noneWorst);
    if (hasIdentity) {
      assertTrue(change > 1e-2, label + ": the adapter changes the predictions (" + change + ")");
    }
  }

  private static float[][] run(Path model, CompiledGraft graft, Map<String, long[][]> hostInputs,
      Map<String, float[]> adapter, Map<String, long[]> shapes) throws Exception {
    Map<String, OnnxTensor> feeds = new HashMap<>();
    try (OrtSession s = ENV.createSession(model.toString(), new OrtSession.SessionOptions())) {
      for (var e : hostInputs.entrySet()) {
        long[][] rows = e.getValue();
        long[] flat = new long[rows.length * rows[0].length];
        for (int i = 0; i < rows.length; i++) {
          System.arraycopy(rows[i], 0, flat, i * rows[0].length, rows[0].length);
        }
        feeds.put(e.getKey(), OnnxTensor.createTensor(ENV, LongBuffer.wrap(flat), new long[] {rows.length, rows[0].length}));
      }
      for (var e : adapter.entrySet()) {
        feeds.put(e.getKey(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(e.getValue()), shapes.get(e.getKey())));
      }
      try (OrtSession.Result r = s.run(feeds)) {
        FloatBuffer b = ((OnnxTensor) r.get(graft.manifest().getLogits()).orElseThrow()).getFloatBuffer();
        float[][] out = new float[hostInputs.get("input_ids").length][LABELS];
        for (float[] row : out) {
          b.get(row);
        }
        return out;
      }
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
  }

  @Test
  void loraOnMatMulAndGemmSitesWithTheRankSymbolic() throws Exception {
    check("LoRA", sites, g -> g.lora(ExportFixtures.ALL_SITES, o -> o.rank(2)));
  }

  @Test
  void dora() throws Exception {
    check("DoRA", sites, g -> g.lora(ExportFixtures.MATMUL_SITES, o -> o.rank(2).dora(true)));
  }

  @Test
  void pissa() throws Exception {
    check("PiSSA", sites, g -> g.lora(ExportFixtures.MATMUL_SITES, o -> o.rank(2).init("pissa")));
  }

  @Test
  void dyLora() throws Exception {
    check("DyLoRA", sites, g -> g.dylora(ExportFixtures.ALL_SITES, o -> o.rank(3)));
  }

  @Test
  void lokr() throws Exception {
    check("LoKr", sites, g -> g.lokr(ExportFixtures.ALL_SITES, o -> o.rank(1)));
  }

  @Test
  void loha() throws Exception {
    check("LoHa", sites, g -> g.loha(ExportFixtures.ALL_SITES, o -> o.rank(2)));
  }

  @Test
  void vera() throws Exception {
    check("VeRA", sites, g -> g.vera(ExportFixtures.ALL_SITES, o -> o.rank(4)));
  }

  @Test
  void ia3() throws Exception {
    check("IA³", sites, g -> g.adapter("ia3", ExportFixtures.ALL_SITES, o -> {}));
  }

  @Test
  void bottleneck() throws Exception {
    check("bottleneck", bert, g -> g.bottleneck("", o -> o.initWeights("bert")));
  }

  @Test
  void mixtureOfLoraExperts() throws Exception {
    check("mixture of LoRA experts", bert, g -> g.mixtureOfLora(FFN, o -> o.experts(3).rank(2)));
  }

  @Test
  void aStackOfNamedAdapters() throws Exception {
    check("stack(lang, task)", bert, g -> g.lora(".*/layer\\.[01]/output/dense/MatMul", o -> o.name("task").rank(2))
        .bottleneck("", o -> o.name("lang").initWeights("bert"))
        .compose(Graft.stack("lang", "task")));
  }

  /** No value of a prompt makes the graph the host: its default is the exported prompt, stated in the manifest. */
  @Test
  void promptTuningDefaultsToTheExportedPrompt() throws Exception {
    check("prompt tuning", bert, g -> g.promptTuning(o -> o.tokens(3)));
  }

  @Test
  void withoutTheHeadIsRefused() {
    CompiledGraft graft = Graft.host(sites).lora(ExportFixtures.ALL_SITES, o -> o.rank(2)).classification(LABELS).compile();
    try (AdapterModel model = open(graft, sites)) {
      GraftException e = assertThrows(GraftException.class,
          () -> model.exportUnmerged(dir.resolve("x"), ExportOptions.defaults().withHead(false)));
      assertEquals(RuntimeErrorCode.ARGUMENT.code(), e.getCode());
      assertTrue(e.getMessage().contains("expected includeHead true"), e.getMessage());
    }
  }

  @Test
  void adapterDefaultsAreEmptyAlongTheRank() throws Exception {
    CompiledGraft graft = Graft.host(sites).lora(ExportFixtures.ALL_SITES, o -> o.rank(2)).classification(LABELS).compile();
    try (AdapterModel model = open(graft, sites)) {
      model.exportUnmerged(dir.resolve("e"), ExportOptions.defaults());
    }
    ModelProto m = ModelProto.parseFrom(Files.readAllBytes(dir.resolve("e").resolve("model.onnx")));
    TensorProto a = m.getGraph().getInitializerList().stream()
        .filter(t -> t.getName().equals("encoder.layer.0.attention.self.query.lora_A.weight")).findFirst().orElseThrow();
    assertEquals(java.util.List.of((long) ExportFixtures.HIDDEN, 0L), a.getDimsList());
    assertEquals(0, a.getRawData().size());
  }
}
