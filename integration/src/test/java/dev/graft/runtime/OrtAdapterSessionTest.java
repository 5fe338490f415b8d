package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.io.OnnxAdapterFile;
import dev.graft.runtime.serve.OrtAdapterSession;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import dev.graft.testing.TinyBertHost;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code .onnx_adapter} files of a LoRA graft (rank 2 on the tiny BERT's query and value, a
 * 2-label head) served through ONNX Runtime's {@code OrtLoraAdapter} on an unmerged export made
 * by hand from the graft's inference graph: the host weights inlined, every parameter a graph
 * input named by its manifest {@code export_name} whose default is its initial value (LoRA's B is zero there, so the defaults are the host
 * with the initial head). Compared with {@link AdapterModel#predict} of the same parameters.
 */
class OrtAdapterSessionTest {
  private static final double TOLERANCE = 1e-5;
  private static final Map<String, long[][]> INPUTS = Map.of(
      "input_ids", new long[][] {{1, 5, 9, 3, 7, 2}, {2, 4, 6, 8, 0, 0}, {11, 12, 13, 14, 15, 16}},
      "attention_mask", new long[][] {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}},
      "token_type_ids", new long[][] {{0, 0, 0, 1, 1, 1}, {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}});

  @TempDir static Path dir;
  private static CompiledGraft graft;
  private static AdapterModel model;
  private static Path export;
  private static Path fileA;
  private static Path fileB;
  private static float[][] initial;
  private static float[][] predictA;
  private static float[][] predictB;
  private static Map<String, float[]> valuesA;

  @BeforeAll
  static void setUp() throws Exception {
    HostModel host = TinyBertHost.host(1);
    Path hostFile = Files.write(dir.resolve("tiny.onnx"), host.model().toByteArray());
    graft = Graft.host(host).name("Served")
        .lora(".*/attention/self/(query|value)/MatMul", l -> l.rank(2).alpha(4))
        .classification(2)
        .compile();
    model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7).withHost(hostFile));
    initial = model.predict(INPUTS);
    export = dir.resolve("served.unmerged.onnx");
    Files.write(export, unmergedByHand(graft, host, model).toByteArray());
    valuesA = randomize(11);
    predictA = model.predict(INPUTS);
    fileA = dir.resolve("a.onnx_adapter");
    model.saveOnnxAdapter(fileA);
    randomize(12);
    predictB = model.predict(INPUTS);
    fileB = dir.resolve("b.onnx_adapter");
    model.saveOnnxAdapter(fileB);
  }

  @AfterAll
  static void tearDown() {
    model.close();
  }

  /** Sets every parameter to seeded random values (scale 0.5) and returns them. */
  private static Map<String, float[]> randomize(long seed) {
    Random r = new Random(seed);
    Map<String, float[]> out = new HashMap<>();
    for (Parameter p : model.getParameters()) {
      float[] v = new float[p.getShapeList().stream().mapToInt(Long::intValue).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (r.nextGaussian() * 0.5);
      }
      model.setParameter(p.getName(), v);
      out.put(p.getName(), v);
    }
    return out;
  }

  /**
   * The graft's inference graph as a standalone model: host initializers (external data there)
   * inlined from the host, each parameter input given its current value as the default.
   */
  static ModelProto unmergedByHand(CompiledGraft graft, HostModel host, AdapterModel defaults) {
    return unmergedByHand(graft, host, defaults, false);
  }

  /**
   * As {@link #unmergedByHand(CompiledGraft, HostModel, AdapterModel)}; with {@code emptyRank}, as
   * the unmerged export declares them: each parameter with an {@code export_rank_axis} takes a
   * symbolic {@code lora_r} there and defaults to size 0 along it (the adapter then adds nothing).
   */
  static ModelProto unmergedByHand(CompiledGraft graft, HostModel host, AdapterModel defaults, boolean emptyRank) {
    Map<String, TensorProto> hostWeights = new HashMap<>();
    for (TensorProto t : host.model().getGraph().getInitializerList()) {
      hostWeights.put(t.getName(), t);
    }
    Map<String, String> exportNames = new HashMap<>();
    for (Parameter p : defaults.getParameters()) {
      exportNames.put(p.getName(), p.getExportName());
    }
    GraphProto.Builder g = graft.inference().getGraph().toBuilder();
    Map<String, Integer> rankAxes = new HashMap<>();
    for (Parameter p : defaults.getParameters()) {
      if (emptyRank && p.getExportRankAxis() > 0) {
        rankAxes.put(p.getName(), p.getExportRankAxis() - 1);
      }
    }
    for (int i = 0; i < g.getInputCount(); i++) {
      String name = g.getInput(i).getName();
      ValueInfoProto.Builder in = g.getInput(i).toBuilder().setName(exportNames.getOrDefault(name, name));
      if (rankAxes.containsKey(name)) {
        in.getTypeBuilder().getTensorTypeBuilder().getShapeBuilder().getDimBuilder(rankAxes.get(name))
            .clearDimValue().setDimParam("lora_r");
      }
      g.setInput(i, in);
    }
    if (emptyRank) {
      g.clearValueInfo();
    }
    for (int n = 0; n < g.getNodeCount(); n++) {
      NodeProto.Builder node = g.getNodeBuilder(n);
      for (int i = 0; i < node.getInputCount(); i++) {
        node.setInput(i, exportNames.getOrDefault(node.getInput(i), node.getInput(i)));
      }
    }
    for (int i = 0; i < g.getInitializerCount(); i++) {
      TensorProto t = g.getInitializer(i);
      if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        g.setInitializer(i, hostWeights.get(t.getName()));
      }
    }
    for (Parameter p : defaults.getParameters()) {
      List<Long> dims = new java.util.ArrayList<>(p.getShapeList());
      float[] v = defaults.getParameter(p.getName());
      if (rankAxes.containsKey(p.getName())) {
        dims.set(rankAxes.get(p.getName()), 0L);
        v = new float[0];
      }
      ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      b.asFloatBuffer().put(v);
      g.addInitializer(TensorProto.newBuilder().setName(p.getExportName()).setDataType(1).addAllDims(dims)
          .setRawData(ByteString.copyFrom(b.array())));
    }
    return graft.inference().toBuilder().setGraph(g).build();
  }

  private static void assertClose(float[][] expected, float[][] actual) {
    assertEquals(expected.length, actual.length);
    for (int r = 0; r < expected.length; r++) {
      assertEquals(expected[r].length, actual[r].length);
      for (int c = 0; c < expected[r].length; c++) {
        assertEquals(expected[r][c], actual[r][c], TOLERANCE, "row " + r + " column " + c);
      }
    }
  }

  private static float maxDifference(float[][] a, float[][] b) {
    float d = 0;
    for (int r = 0; r < a.length; r++) {
      for (int c = 0; c < a[r].length; c++) {
        d = Math.max(d, Math.abs(a[r][c] - b[r][c]));
      }
    }
    return d;
  }

  @Test
  void servedAdaptersEqualPredictAndAlternatePerRequestInOneSession() {
    assertTrue(maxDifference(predictA, predictB) > 0.1, "the two adapters must differ for the test to mean anything");
    assertTrue(maxDifference(predictA, initial) > 0.1);
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      for (int request = 0; request < 6; request++) {
        boolean a = request % 2 == 0;
        assertClose(a ? predictA : predictB, serving.run(a ? fileA : fileB, INPUTS).rows());
      }
      assertClose(initial, serving.run(null, INPUTS).rows());
      assertClose(predictA, serving.run(fileA, INPUTS, model.getManifest().getLogits()).rows());
      assertEquals(Set.of(fileA.toAbsolutePath().normalize(), fileB.toAbsolutePath().normalize()), serving.loaded());
      assertTrue(serving.unload(fileB));
      assertFalse(serving.unload(fileB));
      assertEquals(Set.of(fileA.toAbsolutePath().normalize()), serving.loaded());
      assertClose(predictB, serving.run(fileB, INPUTS).rows());
    }
  }

  @Test
  void concurrentRequestsWithDifferentAdaptersEachGetTheirOwn() throws Exception {
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(4);
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      List<java.util.concurrent.Future<float[][]>> results = new java.util.ArrayList<>();
      for (int request = 0; request < 24; request++) {
        Path adapter = request % 3 == 0 ? fileA : request % 3 == 1 ? fileB : null;
        results.add(pool.submit(() -> serving.run(adapter, INPUTS).rows()));
      }
      for (int request = 0; request < 24; request++) {
        float[][] expected = request % 3 == 0 ? predictA : request % 3 == 1 ? predictB : initial;
        assertClose(expected, results.get(request).get());
      }
      assertEquals(2, serving.loaded().size(), "each file read once, however many requests raced for it");
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void withTheRankSymbolicAndEmptyDefaultsNoAdapterIsTheHostAndAnAdapterItsPredict() throws Exception {
    Path empty = dir.resolve("served.empty-rank.onnx");
    try (AdapterModel fresh = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7)
        .withHost(dir.resolve("tiny.onnx")))) {
      Files.write(empty, unmergedByHand(graft, TinyBertHost.host(1), fresh, true).toByteArray());
    }
    try (OrtAdapterSession serving = OrtAdapterSession.open(empty)) {
      assertClose(initial, serving.run(null, INPUTS).rows());
      assertClose(predictA, serving.run(fileA, INPUTS).rows());
      assertClose(predictB, serving.run(fileB, INPUTS).rows());
      assertClose(initial, serving.run(null, INPUTS).rows());
    }
  }

  @Test
  void noAdapterIsTheDefaultsWhichAreTheHostWithTheInitialHead() {
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      assertClose(initial, serving.run(null, INPUTS).rows());
      assertEquals(model.getParameters().stream().map(Parameter::getExportName).collect(java.util.stream.Collectors.toSet()),
          serving.adapterInputs());
      assertTrue(serving.adapterInputs().contains("encoder.layer.0.attention.self.query.lora_A.weight"),
          serving.adapterInputs().toString());
    }
  }

  @Test
  void halfPrecisionAdaptersAreWidenedForFloatInputsWithANote() throws Exception {
    Path half = dir.resolve("a16.onnx_adapter");
    Path brain = dir.resolve("abf16.onnx_adapter");
    try (AdapterModel m = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7)
        .withHost(dir.resolve("tiny.onnx")))) {
      valuesA.forEach(m::setParameter);
      m.saveOnnxAdapter(half, OnnxAdapterFile.DataType.FLOAT16);
      m.saveOnnxAdapter(brain, OnnxAdapterFile.DataType.BFLOAT16);
    }
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      OrtAdapterSession.Adapter loaded = serving.load(half);
      assertEquals(model.getParameters().size(), loaded.notes().size());
      assertTrue(loaded.notes().get(0).contains("FLOAT16 in the file, converted to FLOAT"), loaded.notes().get(0));
      // float16 keeps 11 bits, bfloat16 8: the logits move by about that much relative to float32's
      assertTrue(maxDifference(predictA, serving.run(half, INPUTS).rows()) < 5e-2);
      assertTrue(maxDifference(predictA, serving.run(brain, INPUTS).rows()) < 2e-1);
      assertTrue(maxDifference(predictA, serving.run(half, INPUTS).rows()) > 0, "float16 rounds");
    }
  }

  @Test
  void saveAndLoadRoundTripExactlyAndAFailedLoadChangesNothing() throws Exception {
    try (AdapterModel m = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7)
        .withHost(dir.resolve("tiny.onnx")))) {
      assertEquals(List.of(), m.loadOnnxAdapter(fileA));
      for (Parameter p : m.getParameters()) {
        assertArrayEquals(valuesA.get(p.getName()), m.getParameter(p.getName()), p.getName());
      }
      assertClose(predictA, m.predict(INPUTS));
      OnnxAdapterFile.Contents a = OnnxAdapterFile.read(fileA);
      assertEquals(m.getParameters().size(), a.parameters().size());
      assertEquals(m.getParameters().get(0).getExportName(), a.parameters().get(0).name());
      for (int i = 0; i < a.parameters().size(); i++) {
        Parameter p = m.getParameters().get(i);
        assertEquals(p.getExportName(), a.parameters().get(i).name());
        assertArrayEquals(p.getShapeList().stream().mapToLong(Long::longValue).toArray(), a.parameters().get(i).dims());
      }

      TrainingStateSnapshot before = TrainingStateSnapshot.of(m);
      List<OnnxAdapterFile.Parameter> extra = new java.util.ArrayList<>(a.parameters());
      extra.add(OnnxAdapterFile.Parameter.of("not.a.parameter", OnnxAdapterFile.DataType.FLOAT, new long[] {1},
          new float[] {1}));
      Path extraFile = dir.resolve("extra.onnx_adapter");
      OnnxAdapterFile.write(extraFile, new OnnxAdapterFile.Contents(0, 0, extra));
      GraftException e = assertThrows(GraftException.class, () -> m.loadOnnxAdapter(extraFile));
      assertEquals("GRAFT-R006", e.getCode());
      assertTrue(e.getMessage().contains("not.a.parameter"), e.getMessage());

      List<OnnxAdapterFile.Parameter> reshaped = new java.util.ArrayList<>(a.parameters());
      OnnxAdapterFile.Parameter last = reshaped.remove(0);
      assertEquals(2, last.dims().length);
      float[] v = last.toFloats();
      reshaped.add(OnnxAdapterFile.Parameter.of(last.name(), OnnxAdapterFile.DataType.FLOAT, new long[] {v.length}, v));
      Path reshapedFile = dir.resolve("reshaped.onnx_adapter");
      OnnxAdapterFile.write(reshapedFile, new OnnxAdapterFile.Contents(0, 0, reshaped));
      TensorMismatchException t = assertThrows(TensorMismatchException.class, () -> m.loadOnnxAdapter(reshapedFile));
      assertEquals(last.name(), t.getTensorName());

      List<OnnxAdapterFile.Parameter> missing = new java.util.ArrayList<>(a.parameters().subList(1, a.parameters().size()));
      Path missingFile = dir.resolve("missing.onnx_adapter");
      OnnxAdapterFile.write(missingFile, new OnnxAdapterFile.Contents(0, 0, missing));
      FormatException f = assertThrows(FormatException.class, () -> m.loadOnnxAdapter(missingFile));
      assertTrue(f.getMessage().contains(a.parameters().get(0).name()), f.getMessage());

      Path truncated = Files.write(dir.resolve("truncated.onnx_adapter"),
          java.util.Arrays.copyOf(Files.readAllBytes(fileB), 100));
      assertEquals("GRAFT-R070", assertThrows(GraftException.class, () -> m.loadOnnxAdapter(truncated)).getCode());
      assertEquals("", before.differences(TrainingStateSnapshot.of(m)));
    }
  }

  @Test
  void savedFilesHonourTheUmaskAndReplaceAtomically() throws Exception {
    Set<PosixFilePermission> perms = Files.getPosixFilePermissions(fileA);
    assertTrue(perms.contains(PosixFilePermission.OWNER_READ));
    Path probe = Files.createFile(dir.resolve("probe"));
    assertEquals(Files.getPosixFilePermissions(probe), perms, "as any new file under this umask");
    try (var s = Files.list(dir)) {
      assertTrue(s.noneMatch(p -> p.getFileName().toString().contains(".graft-tmp-")));
    }
  }

  @Test
  void adaptersThatDoNotFitTheExportAreRefusedWhenLoadedNamingTheInput() throws Exception {
    OnnxAdapterFile.Contents a = OnnxAdapterFile.read(fileA);
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      Path unknown = dir.resolve("unknown.onnx_adapter");
      OnnxAdapterFile.write(unknown, new OnnxAdapterFile.Contents(0, 0, List.of(
          OnnxAdapterFile.Parameter.of("no_such_input", OnnxAdapterFile.DataType.FLOAT, new long[] {1}, new float[] {1}))));
      GraftException e = assertThrows(GraftException.class, () -> serving.run(unknown, INPUTS));
      assertEquals(RuntimeErrorCode.UNKNOWN_NAME, e.getErrorCode());
      assertTrue(e.getMessage().contains("no_such_input"), e.getMessage());

      OnnxAdapterFile.Parameter first = a.parameters().get(0);
      float[] v = first.toFloats();
      Path flat = dir.resolve("flat.onnx_adapter");
      OnnxAdapterFile.write(flat, new OnnxAdapterFile.Contents(0, 0, List.of(
          OnnxAdapterFile.Parameter.of(first.name(), OnnxAdapterFile.DataType.FLOAT, new long[] {v.length}, v))));
      TensorMismatchException t = assertThrows(TensorMismatchException.class, () -> serving.load(flat));
      assertEquals(first.name(), t.getTensorName());
      assertTrue(serving.loaded().isEmpty(), "a refused file is not held");

      GraftException twice = assertThrows(GraftException.class,
          () -> serving.run(fileA, Map.of("input_ids", INPUTS.get("input_ids"), "attention_mask",
              INPUTS.get("attention_mask"), "token_type_ids", INPUTS.get("token_type_ids"), first.name(),
              new long[][] {{1}})));
      assertEquals(RuntimeErrorCode.ARGUMENT, twice.getErrorCode());
      GraftException missingInput = assertThrows(GraftException.class,
          () -> serving.run(fileA, Map.of("input_ids", INPUTS.get("input_ids"))));
      assertTrue(missingInput.getMessage().contains("attention_mask"), missingInput.getMessage());
    }
  }

  @Test
  void aClosedSessionRefusesRequests() {
    OrtAdapterSession serving = OrtAdapterSession.open(export);
    serving.close();
    serving.close();
    assertEquals(RuntimeErrorCode.CLOSED, assertThrows(GraftException.class, () -> serving.run(fileA, INPUTS)).getErrorCode());
  }
}
