package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.dsl.AdapterOptions;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.SiteUpdate;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The update graph ({@code GraphVariant.UPDATE}) for every linear-site kind, through ONNX Runtime
 * on a tiny BERT-like host with MatMul + Add sites (query, key) and Gemm sites with {@code
 * transB=1} (value: alpha 0.5 and C; dense: no C): with random non-zero parameters, the host whose
 * site weights are replaced by {@code W + A·B} ({@code W + (A·B)ᵀ} where stored transposed) and
 * biases by {@code b + bias}, under the same graft with its adapters at their initial (identity)
 * values and the same head, predicts what the adapted model predicts, within 1e-5.
 */
class SiteUpdatesTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int HIDDEN = ExportFixtures.HIDDEN;
  private static final String MATMUL_SITES = ExportFixtures.MATMUL_SITES;
  private static final String ALL_SITES = ExportFixtures.ALL_SITES;
  @TempDir static Path hostDir;
  private static Path host;
  private static ModelProto hostModel;
  @TempDir Path dir;

  @BeforeAll
  static void writeHost() throws Exception {
    host = ExportFixtures.sitesHost(hostDir);
    hostModel = dev.graft.spec.onnx.Onnx.ModelProto.parseFrom(Files.readAllBytes(host));
  }

  private static Map<String, long[][]> inputs() {
    return ExportFixtures.inputs();
  }

  /**
   * Compiles {@code kind} on {@code target}, sets random parameters, runs the update graph, and
   * checks the host with the updates folded in against the adapted model; returns the records.
   */
  private List<SiteUpdate> check(String kind, String target, Consumer<AdapterOptions> options) throws Exception {
    CompiledGraft graft = Graft.host(host).adapter(kind, target, options::accept).classification(3).compile();
    Map<String, float[]> values;
    float[][] adapted;
    float[][] plain;
    try (AdapterModel model = open(graft, host)) {
      plain = model.predict(inputs());
      Random r = new Random(11);
      for (Parameter p : model.getParameters()) {
        float[] v = model.getParameter(p.getName());
        for (int i = 0; i < v.length; i++) {
          v[i] += (float) (0.3 * r.nextGaussian());
        }
        model.setParameter(p.getName(), v);
      }
      values = model.getParameterValues();
      adapted = model.predict(inputs());
    }
    List<SiteUpdate> records = graft.manifest().getSiteUpdatesList();
    Map<String, float[]> updates = runUpdate(graft, values);
    Path merged = dir.resolve("merged.onnx");
    Files.write(merged, merged(records, updates).toByteArray());
    try (AdapterModel folded = AdapterModel.open(Graft.graphs(graft),
        ModelOptions.defaults().withSeed(3).withHost(merged).withHostChangeAllowed())) {
      for (Parameter p : folded.getParameters()) {
        if (p.getRole() == ParameterRole.HEAD_WEIGHT || p.getRole() == ParameterRole.HEAD_BIAS) {
          folded.setParameter(p.getName(), values.get(p.getName()));
        }
      }
      float[][] got = folded.predict(inputs());
      double worst = 0;
      double change = 0;
      for (int i = 0; i < got.length; i++) {
        for (int j = 0; j < got[i].length; j++) {
          worst = Math.max(worst, Math.abs(got[i][j] - adapted[i][j]));
          change = Math.max(change, Math.abs(adapted[i][j] - plain[i][j]));
        }
      }
      assertTrue(change > 1e-2, kind + ": the trained adapter changes the predictions (" + change + ")");
      assertTrue(worst <= 1e-5, kind + ": merged host vs adapted model, max |difference| " + worst);
      System.out.printf("SiteUpdatesTest %-8s %d sites, max |difference| %.3g%n", kind, records.size(), worst);
    }
    return records;
  }

  private static AdapterModel open(CompiledGraft graft, Path hostFile) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(hostFile));
  }

  /** Runs the update graph with the host's weights inlined and {@code values} fed; its outputs by name. */
  private static Map<String, float[]> runUpdate(CompiledGraft graft, Map<String, float[]> values) throws OrtException {
    Map<String, TensorProto> weights = new HashMap<>();
    hostModel.getGraph().getInitializerList().forEach(t -> weights.put(t.getName(), t));
    ModelProto.Builder m = graft.update().toBuilder();
    var gb = m.getGraphBuilder();
    for (int i = 0; i < gb.getInitializerCount(); i++) {
      TensorProto t = gb.getInitializer(i);
      if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        gb.setInitializer(i, weights.get(t.getName()));
      }
    }
    try (OrtSession s = ENV.createSession(m.build().toByteArray())) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      try {
        for (Parameter p : graft.manifest().getParametersList()) {
          feeds.put(p.getName(), OnnxTensor.createTensor(ENV, FloatBuffer.wrap(values.get(p.getName())),
              p.getShapeList().stream().mapToLong(Long::longValue).toArray()));
        }
        try (OrtSession.Result r = s.run(feeds)) {
          Map<String, float[]> out = new HashMap<>();
          for (var e : r) {
            FloatBuffer b = ((OnnxTensor) e.getValue()).getFloatBuffer();
            float[] f = new float[b.remaining()];
            b.get(f);
            out.put(e.getKey(), f);
          }
          return out;
        }
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
  }

  /** The host with every mergeable site's weight {@code W + A·B} (transposed as stored) and bias {@code b + bias}. */
  private static ModelProto merged(List<SiteUpdate> records, Map<String, float[]> updates) {
    ModelProto.Builder m = hostModel.toBuilder();
    var gb = m.getGraphBuilder();
    Map<String, Integer> index = new HashMap<>();
    for (int i = 0; i < gb.getInitializerCount(); i++) {
      index.put(gb.getInitializer(i).getName(), i);
    }
    for (SiteUpdate u : records) {
      if (!u.getMergeable()) {
        continue;
      }
      float[] a = updates.get(u.getOutputA());
      float[] b = updates.get(u.getOutputB());
      int in = (int) u.getIn();
      int out = (int) u.getOut();
      int rank = (int) u.getRank();
      assertEquals((long) in * rank, a.length, u.getOutputA());
      assertEquals((long) rank * out, b.length, u.getOutputB());
      TensorProto w = gb.getInitializer(index.get(u.getHostWeight()));
      double[] wv = Tensors.readDoubles(w);
      for (int i = 0; i < in; i++) {
        for (int j = 0; j < out; j++) {
          double sum = 0;
          for (int k = 0; k < rank; k++) {
            sum += (double) a[i * rank + k] * b[k * out + j];
          }
          wv[u.getTransposed() ? j * in + i : i * out + j] += sum;
        }
      }
      gb.setInitializer(index.get(u.getHostWeight()), Tensors.floats(w.getName(), TensorType.FLOAT, w.getDimsList(), wv));
      if (!u.getOutputBias().isEmpty()) {
        assertFalse(u.getHostBias().isEmpty(), u.getSite() + ": a bias change where the host has a bias");
        TensorProto bias = gb.getInitializer(index.get(u.getHostBias()));
        double[] bv = Tensors.readDoubles(bias);
        float[] db = updates.get(u.getOutputBias());
        for (int j = 0; j < bv.length; j++) {
          bv[j] += db[j];
        }
        gb.setInitializer(index.get(u.getHostBias()), Tensors.floats(bias.getName(), TensorType.FLOAT, bias.getDimsList(), bv));
      }
    }
    return m.build();
  }

  private static SiteUpdate at(List<SiteUpdate> records, String module) {
    return records.stream().filter(u -> u.getSite().endsWith(module)).findFirst().orElseThrow();
  }

  @Test
  void loraIsLowRankAtItsRankOnMatMulAndTransposedGemmSites() throws Exception {
    List<SiteUpdate> r = check("lora", ALL_SITES, o -> o.set("rank", 2).set("alpha", 6.0));
    assertEquals(4, r.size());
    SiteUpdate value = at(r, "value");
    assertTrue(value.getMergeable() && value.getLowRank() && value.getTransposed(), value.toString());
    assertEquals(2, value.getRank());
    assertEquals(0.5, value.getGemmAlpha(), 1e-7);
    assertEquals("value.bias", value.getHostBias());
    assertEquals("update/encoder.layer.0.attention.self.value/A", value.getOutputA());
    assertEquals("query.bias", at(r, "query").getHostBias());
    assertEquals("", at(r, "dense").getHostBias());
    assertFalse(at(r, "query").getTransposed());
  }

  @Test
  void rsLora() throws Exception {
    check("lora", ALL_SITES, o -> o.set("rank", 4).set("alpha", 6.0).set("rslora", true));
  }

  @Test
  void doraIsADensePair() throws Exception {
    List<SiteUpdate> r = check("lora", MATMUL_SITES, o -> o.set("rank", 2).set("dora", true));
    assertFalse(at(r, "query").getLowRank());
    assertEquals(HIDDEN, at(r, "query").getRank());
    assertEquals(HIDDEN, at(r, "key").getRank(), "66 → 70: the identity on the input side");
  }

  @Test
  void pissaIsLowRankAtTwiceItsRank() throws Exception {
    List<SiteUpdate> r = check("lora", MATMUL_SITES, o -> o.set("rank", 2).set("init", "pissa"));
    assertTrue(at(r, "query").getLowRank());
    assertEquals(4, at(r, "query").getRank());
  }

  @Test
  void dyLoraAtItsFullRank() throws Exception {
    List<SiteUpdate> r = check("dylora", ALL_SITES, o -> o.set("rank", 3).set("alpha", 6.0));
    assertEquals(3, at(r, "value").getRank());
  }

  @Test
  void lokr() throws Exception {
    check("lokr", ALL_SITES, o -> o.set("rank", 1).set("alpha", 3.0));
  }

  @Test
  void loha() throws Exception {
    check("loha", ALL_SITES, o -> o.set("rank", 2).set("alpha", 4.0));
  }

  @Test
  void vera() throws Exception {
    check("vera", ALL_SITES, o -> o.set("rank", 4));
  }

  @Test
  void ia3ChangesTheBiasOfOutputSites() throws Exception {
    List<SiteUpdate> r = check("ia3", ".*/(key|value)/(MatMul|Gemm)", o -> {});
    assertEquals("update/encoder.layer.0.attention.self.key/bias", at(r, "key").getOutputBias());
  }

  @Test
  void aBottleneckIsNotMergeable() throws Exception {
    CompiledGraft graft = Graft.host(host).adapter("bottleneck", ".*/query/MatMul", o -> {}).classification(3).compile();
    SiteUpdate u = graft.manifest().getSiteUpdates(0);
    assertFalse(u.getMergeable());
    assertTrue(u.getReason().contains("not a change of the layer's weight"), u.getReason());
    assertEquals(0, graft.update().getGraph().getOutputCount());
  }

  @Test
  void namedAdaptersOfACompositionAreNotMergeableTheOthersAre() {
    CompiledGraft graft = Graft.host(host)
        .lora(".*/query/MatMul", o -> o.name("task").rank(2))
        .bottleneck(".*/query/MatMul", o -> o.name("lang"))
        .compose(Graft.stack("lang", "task"))
        .adapter("ia3", ".*/key/MatMul", o -> {})
        .classification(3).compile();
    List<SiteUpdate> r = graft.manifest().getSiteUpdatesList();
    assertEquals(3, r.size());
    assertFalse(r.get(0).getMergeable());
    assertEquals("the named adapter 'task' is placed by a composition behind its gate", r.get(0).getReason());
    assertFalse(r.get(1).getMergeable());
    assertTrue(r.get(2).getMergeable(), "IA³ alone at the key");
    assertEquals(3, r.get(2).getAdapter());
    assertEquals(List.of("update/encoder.layer.0.attention.self.key/A", "update/encoder.layer.0.attention.self.key/B",
        "update/encoder.layer.0.attention.self.key/bias"),
        graft.update().getGraph().getOutputList().stream().map(o -> o.getName()).toList());
    assertEquals(graft.manifest().getName() + ".update.onnx", graft.manifest().getUpdateGraph());
    assertEquals(graft.manifest().getParametersList().stream().map(Parameter::getName).toList(),
        graft.update().getGraph().getInputList().stream().map(i -> i.getName()).toList(),
        "the update graph declares every parameter (the gates and host inputs it does not read are left out)");
  }

  /**
   * Export names as Olive's ExtractAdapters and onnxruntime-genai name LoRA inputs ({@code
   * <module>.lora_A.weight}), with the rank axes an unmerged export makes symbolic.
   */
  @Test
  void exportNamesAreOnnxRuntimeGenAiLoraNames() {
    CompiledGraft graft = Graft.host(host)
        .lora(".*/query/MatMul", o -> o.name("task").rank(2))
        .bottleneck(".*/query/MatMul", o -> o.name("lang"))
        .compose(Graft.stack("lang", "task"))
        .adapter("lora", ".*/key/MatMul", o -> o.set("rank", 2).set("dora", true))
        .classification(3).compile();
    Map<String, Parameter> byName = new HashMap<>();
    graft.manifest().getParametersList().forEach(p -> byName.put(p.getName(), p));
    String q = "encoder.layer.0.attention.self.query";
    String k = "encoder.layer.0.attention.self.key";
    assertEquals(k + ".lora_A.weight", byName.get(k + ".lora_A").getExportName());
    assertEquals(2, byName.get(k + ".lora_A").getExportRankAxis());
    assertEquals(k + ".lora_B.weight", byName.get(k + ".lora_B").getExportName());
    assertEquals(1, byName.get(k + ".lora_B").getExportRankAxis());
    assertEquals(k + ".lora_magnitude_vector", byName.get(k + ".lora_magnitude_vector").getExportName());
    assertEquals(0, byName.get(k + ".lora_magnitude_vector").getExportRankAxis());
    assertEquals(q + ".lora_A.task.weight", byName.get("task." + q + ".lora_A").getExportName());
    assertEquals("classifier.weight", byName.get("classifier.weight").getExportName());
    assertEquals(graft.manifest().getParametersCount(),
        graft.manifest().getParametersList().stream().map(Parameter::getExportName).distinct().count(), "unique");
    assertTrue(graft.manifest().getParametersList().stream().noneMatch(p -> p.getExportName().isEmpty()));
  }
}
