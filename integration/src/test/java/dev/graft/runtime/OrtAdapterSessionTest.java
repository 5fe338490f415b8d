package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.io.OnnxAdapterFile;
import dev.graft.runtime.serve.OrtAdapterSession;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.TinyBertHost;
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
 * 2-label head) served through ONNX Runtime's {@code OrtLoraAdapter} on the graft's unmerged
 * export ({@link AdapterModel#exportUnmerged}: adapter parameters are graph inputs under their
 * export names, the rank the symbolic {@code lora_r}, defaults empty along it; the head fixed).
 * Compared with {@link AdapterModel#predict} of the same parameters within 1e-5.
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
    model.exportUnmerged(dir.resolve("export"), ExportOptions.defaults());
    export = dir.resolve("export").resolve(ExportOptions.DEFAULT_MODEL_FILE);
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

  /** The parameters of adapter declarations (the export's inputs; the head is fixed in the export). */
  private static List<Parameter> adapterParameters(AdapterModel m) {
    return m.getParameters().stream().filter(p -> p.getAdapter() > 0).toList();
  }

  /** Sets every adapter parameter to seeded random values (scale 0.5) and returns them; the head stays. */
  private static Map<String, float[]> randomize(long seed) {
    Random r = new Random(seed);
    Map<String, float[]> out = new HashMap<>();
    for (Parameter p : adapterParameters(model)) {
      float[] v = new float[p.getShapeList().stream().mapToInt(Long::intValue).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (r.nextGaussian() * 0.5);
      }
      model.setParameter(p.getName(), v);
      out.put(p.getName(), v);
    }
    return out;
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
    // the adapters move the logits by far more than the tolerance, and apart
    assertTrue(maxDifference(predictA, predictB) > 100 * TOLERANCE, "A vs B " + maxDifference(predictA, predictB));
    assertTrue(maxDifference(predictA, initial) > 100 * TOLERANCE, "A vs none " + maxDifference(predictA, initial));
    assertTrue(maxDifference(predictB, initial) > 100 * TOLERANCE, "B vs none " + maxDifference(predictB, initial));
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      float worst = 0;
      for (int request = 0; request < 6; request++) {
        boolean a = request % 2 == 0;
        float[][] served = serving.run(a ? fileA : fileB, INPUTS).rows();
        assertClose(a ? predictA : predictB, served);
        worst = Math.max(worst, maxDifference(a ? predictA : predictB, served));
      }
      System.out.printf(java.util.Locale.ROOT, "OrtAdapterSessionTest served vs predict max |diff| %.3g; A vs B %.3g,"
          + " A vs no adapter %.3g%n", worst, maxDifference(predictA, predictB), maxDifference(predictA, initial));
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
  void anAdapterOfAnotherRankServesAlongTheSymbolicRank() throws Exception {
    // rank 1 cut from A: a model whose second rank entry is zero computes what the rank-1 file does
    List<OnnxAdapterFile.Parameter> cut = new java.util.ArrayList<>();
    try (AdapterModel m = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7)
        .withHost(dir.resolve("tiny.onnx")))) {
      int withRank = 0;
      for (Parameter p : adapterParameters(m)) {
        float[] v = valuesA.get(p.getName()).clone();
        long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
        if (p.getExportRankAxis() == 0) {
          cut.add(OnnxAdapterFile.Parameter.of(p.getExportName(), OnnxAdapterFile.DataType.FLOAT, shape, v));
          m.setParameter(p.getName(), v);
          continue;
        }
        withRank++;
        assertEquals(2, shape.length);
        int rows = (int) shape[0];
        int cols = (int) shape[1];
        boolean rankIsColumns = p.getExportRankAxis() == 2;
        float[] one = new float[rankIsColumns ? rows : cols];
        for (int r = 0; r < rows; r++) {
          for (int c = 0; c < cols; c++) {
            if ((rankIsColumns ? c : r) == 0) {
              one[rankIsColumns ? r : c] = v[r * cols + c];
            } else {
              v[r * cols + c] = 0;
            }
          }
        }
        cut.add(OnnxAdapterFile.Parameter.of(p.getExportName(), OnnxAdapterFile.DataType.FLOAT,
            rankIsColumns ? new long[] {rows, 1} : new long[] {1, cols}, one));
        m.setParameter(p.getName(), v);
      }
      assertEquals(8, withRank, "A and B on 2 layers × query, value");
      float[][] expected = m.predict(INPUTS);
      assertTrue(maxDifference(expected, predictA) > 1e-3, "the cut must change the output");
      Path rankOne = dir.resolve("rank1.onnx_adapter");
      OnnxAdapterFile.write(rankOne, new OnnxAdapterFile.Contents(0, 0, cut));
      try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
        assertClose(expected, serving.run(rankOne, INPUTS).rows());
        assertClose(predictA, serving.run(fileA, INPUTS).rows());
      }
    }
  }

  @Test
  void noAdapterIsTheHostWithTheHeadAndTheInputsAreTheExportNames() {
    try (OrtAdapterSession serving = OrtAdapterSession.open(export)) {
      // LoRA's B starts at zero, so the initial predict is the host with the head
      assertClose(initial, serving.run(null, INPUTS).rows());
      assertEquals(adapterParameters(model).stream().map(Parameter::getExportName)
          .collect(java.util.stream.Collectors.toSet()), serving.adapterInputs());
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
      assertEquals(adapterParameters(model).size(), loaded.notes().size());
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
      for (Parameter p : adapterParameters(m)) {
        assertArrayEquals(valuesA.get(p.getName()), m.getParameter(p.getName()), p.getName());
      }
      assertClose(predictA, m.predict(INPUTS));
      OnnxAdapterFile.Contents a = OnnxAdapterFile.read(fileA);
      List<Parameter> adapterParams = adapterParameters(m);
      assertEquals(adapterParams.size(), a.parameters().size());
      assertTrue(adapterParams.size() < m.getParameters().size(), "the head is not in the file");
      for (int i = 0; i < a.parameters().size(); i++) {
        Parameter p = adapterParams.get(i);
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
    assertFalse(Files.getPosixFilePermissions(fileA).contains(PosixFilePermission.OTHERS_WRITE));
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
