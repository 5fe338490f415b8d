package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.io.DType;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.QuantizedAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.state.QuantizedStats;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Quantized adapters at run time on the float32 tiny BERT: training, the bit-packed file (pack and
 * unpack, save and load, sizes) and hostile files.
 */
class QuantizedAdapterModelTest {
  private static final long[] LABELS = {1, 0, 1};
  private static final String A = "encoder.layer.0.attention.self.query.lora_A";
  /** lora_A of the tiny host's hidden width 8 at rank 4. */
  private static final int A_SIZE = 8 * 4;
  private static final String STATS = ".quant_stats";

  @TempDir static Path hostDir;
  private static HostModel host;
  private static Path hostFile;

  @BeforeAll
  static void writeHost() throws Exception {
    host = TinyBertHost.host(1);
    hostFile = Files.write(hostDir.resolve("tiny.onnx"), host.model().toByteArray());
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", new long[][] {{1, 5, 9, 3, 7, 2}, {2, 4, 6, 8, 0, 0}, {11, 12, 13, 14, 15, 10}});
    m.put("attention_mask", new long[][] {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}});
    m.put("token_type_ids", new long[][] {{0, 0, 0, 1, 1, 1}, {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}});
    return m;
  }

  private static CompiledGraft graft(int bits) {
    return Graft.host(host).lora("", l -> l.rank(4).quantizeBits(bits)).classification(2).compile();
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3).withHost(hostFile));
  }

  private static double maxDiff(float[][] a, float[][] b) {
    double d = 0;
    for (int i = 0; i < a.length; i++) {
      for (int j = 0; j < a[i].length; j++) {
        d = Math.max(d, Math.abs(a[i][j] - b[i][j]));
      }
    }
    return d;
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 4, 8})
  void packAndUnpackRoundTrip(int bits) {
    Random r = new Random(bits);
    for (int n : new int[] {1, 7, 8, 9, 33, 1000}) {
      int[] codes = r.ints(n, 0, 1 << bits).toArray();
      byte[] packed = QuantizedAdapters.pack(codes, bits);
      assertEquals((n * bits + 7) / 8, packed.length);
      assertArrayEquals(codes, QuantizedAdapters.unpack("test", "t", packed, n, bits));
    }
    // The layout: code i at bits i·b … counted from the least significant bit of byte 0.
    assertArrayEquals(bits == 1 ? new byte[] {0b0000_0101} : bits == 2 ? new byte[] {0b0011_1001}
        : bits == 4 ? new byte[] {0x21, 0x03} : new byte[] {1, 2, 3},
        QuantizedAdapters.pack(bits == 2 ? new int[] {1, 2, 3} : bits == 1 ? new int[] {1, 0, 1} : new int[] {1, 2, 3}, bits));
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 4, 8})
  void trainsSavesBitPackedAndReloadsBitIdentically(int bits, @TempDir Path dir) throws Exception {
    CompiledGraft graft = graft(bits);
    try (AdapterModel model = open(graft)) {
      float first = model.trainStep(inputs(), LABELS, 0.02f);
      float last = first;
      for (int i = 0; i < 30; i++) {
        last = model.trainStep(inputs(), LABELS, 0.02f);
      }
      assertTrue(last < 0.8 * first, "loss falls: " + first + " -> " + last);
      float[][] before = model.predict(inputs());
      Path file = dir.resolve(QuantizedAdapters.FILE);
      model.saveQuantizedAdapter(file);
      model.saveAdapter(dir.resolve("fp32"));
      long packed = Files.size(file);
      long fp32 = Files.size(dir.resolve("fp32").resolve(PeftAdapters.WEIGHTS_FILE));
      Safetensors.Contents saved = Safetensors.read(file);
      assertEquals(DType.U8, saved.tensors().get(A).dtype());
      assertArrayEquals(new long[] {(A_SIZE * bits + 7) / 8}, saved.tensors().get(A).shape());
      JsonObject meta = JsonParser.parseString(saved.metadata().get(A)).getAsJsonObject();
      float[] stats = model.getParameter(A + STATS);
      assertEquals(stats[0], meta.get("mean").getAsFloat(), 0f, "the mean the forward pass read, exactly");
      assertEquals(stats[1], meta.get("std").getAsFloat(), 0f);
      assertTrue(saved.tensors().keySet().stream().noneMatch(n -> n.endsWith(STATS)), "mu, sigma are metadata");
      try (AdapterModel fresh = open(graft)) {
        fresh.loadQuantizedAdapter(file);
        float[][] after = fresh.predict(inputs());
        for (int i = 0; i < before.length; i++) {
          assertArrayEquals(before[i], after[i], 0f, "bit-identical logits after reload, row " + i);
        }
        assertArrayEquals(stats, fresh.getParameter(A + STATS), 0f, "mu, sigma restored, not recomputed");
        assertTrue(maxDiff(new float[][] {model.getParameter(A)}, new float[][] {fresh.getParameter(A)}) > 0,
            "the latent weights are their cells' centres, not the saved model's");
        Path again = dir.resolve("again.safetensors");
        fresh.saveQuantizedAdapter(again);
        assertArrayEquals(Files.readAllBytes(file), Files.readAllBytes(again), "saving the reloaded model: the same bytes");
        // Training on from the reload recomputes mu and sigma from the weights.
        fresh.trainStep(inputs(), LABELS, 0.02f);
        assertArrayEquals(QuantizedStats.of(fresh.getParameter(A)), fresh.getParameter(A + STATS), 0f);
        System.out.printf("quant %d bits: loss %.4f -> %.4f; saved %d bytes bit-packed vs %d fp32 PEFT;"
            + " reload bit-identical%n", bits, first, last, packed, fp32);
        assertTrue(packed < fp32, packed + " vs " + fp32);
      }
    }
  }

  @Test
  void theMergedExportReadsTheStoredStatisticsInABareOnnxRuntime(@TempDir Path dir) throws Exception {
    CompiledGraft graft = graft(2);
    try (AdapterModel model = open(graft)) {
      for (int i = 0; i < 5; i++) {
        model.trainStep(inputs(), LABELS, 0.02f);
      }
      float[][] trained = model.predict(inputs());
      Path merged = dir.resolve("merged");
      model.exportMerged(merged, ExportOptions.defaults());
      float[][] bare = ExportFixtures.bareRun(merged.resolve("model.onnx"), inputs(), dir)
          .rows(graft.manifest().getLogits(), 2);
      double worst = maxDiff(trained, bare);
      System.out.printf("quant 2 bits, merged export in a bare ONNX Runtime: max |logit diff| %.3g%n", worst);
      assertTrue(worst < 1e-5, "the quantized site, placed unmerged, reads the exported mu, sigma: " + worst);
    }
  }

  @Test
  void theStatisticsFollowTheWeightsAfterEveryStepAndEveryWrite() {
    try (AdapterModel model = open(graft(2))) {
      float[] initial = model.getParameter(A);
      assertArrayEquals(QuantizedStats.of(initial), model.getParameter(A + STATS), 0f, "after initialization");
      model.trainStep(inputs(), LABELS, 0.05f);
      float[] stepped = model.getParameter(A);
      float[] stats = model.getParameter(A + STATS);
      assertArrayEquals(QuantizedStats.of(stepped), stats, 0f, "after a step");
      assertTrue(stats[0] != QuantizedStats.of(initial)[0], "the step moved the mean");
      float[] scaled = stepped.clone();
      for (int i = 0; i < scaled.length; i++) {
        scaled[i] = 3 * scaled[i] + 1;
      }
      model.setParameter(A, scaled);
      assertArrayEquals(QuantizedStats.of(scaled), model.getParameter(A + STATS), 0f, "after a write");
      // Sample deviation (n − 1), as the reference code's torch.std.
      double mean = 0;
      for (float x : scaled) {
        mean += x;
      }
      mean /= scaled.length;
      double ss = 0;
      for (float x : scaled) {
        ss += (x - mean) * (x - mean);
      }
      assertEquals(Math.sqrt(ss / (scaled.length - 1)), model.getParameter(A + STATS)[1], 1e-6);
    }
  }

  @Test
  void theAdapterFolderKeepsTheLatentWeightsInGraftsFormatAndReloadsBitIdentically(@TempDir Path dir) throws Exception {
    CompiledGraft graft = graft(1);
    try (AdapterModel model = open(graft)) {
      for (int i = 0; i < 5; i++) {
        model.trainStep(inputs(), LABELS, 0.02f);
      }
      model.saveAdapter(dir);
      JsonObject config = JsonParser.parseString(Files.readString(dir.resolve(PeftAdapters.CONFIG_FILE))).getAsJsonObject();
      assertEquals("GRAFT", config.get("peft_type").getAsString(), "not PEFT's LORA: PEFT would read the latent weights");
      try (AdapterModel fresh = open(graft)) {
        fresh.loadAdapter(dir);
        float[][] a = model.predict(inputs());
        float[][] b = fresh.predict(inputs());
        for (int i = 0; i < a.length; i++) {
          assertArrayEquals(a[i], b[i], 0f, "bit-identical: the latent weights are restored");
        }
      }
    }
  }

  @Test
  void aGraftWithoutQuantizedParametersIsR300(@TempDir Path dir) {
    try (AdapterModel model = open(Graft.host(TinyBertHost.host(1)).lora("", l -> l.rank(4)).classification(2).compile())) {
      GraftException e = assertThrows(GraftException.class, () -> model.saveQuantizedAdapter(dir.resolve("x")));
      assertEquals(RuntimeErrorCode.QUANTIZED_NOT_QUANTIZED, e.getErrorCode());
      assertTrue(e.getMessage().startsWith("[GRAFT-R300] graft "), e.getMessage());
    }
  }

  /** A saved file changed by {@code edit}, loaded into a model whose parameters must not change. */
  private static GraftException hostile(Path dir, Consumer<Map<String, TensorData>> editTensors,
      Consumer<Map<String, String>> editMetadata) {
    CompiledGraft graft = graft(2);
    try (AdapterModel model = open(graft)) {
      model.trainStep(inputs(), LABELS, 0.02f);
      Path file = dir.resolve("good.safetensors");
      model.saveQuantizedAdapter(file);
      Safetensors.Contents c = Safetensors.read(file);
      Map<String, TensorData> tensors = new TreeMap<>(c.tensors());
      Map<String, String> metadata = new TreeMap<>(c.metadata());
      editTensors.accept(tensors);
      editMetadata.accept(metadata);
      Path bad = dir.resolve("bad.safetensors");
      Safetensors.write(bad, tensors, metadata);
      try (AdapterModel other = open(graft)) {
        float[] a = other.getParameter(A);
        float[] stats = other.getParameter(A + STATS);
        float[][] p = other.predict(inputs());
        GraftException e = assertThrows(GraftException.class, () -> other.loadQuantizedAdapter(bad));
        assertArrayEquals(a, other.getParameter(A), "a failed load changes nothing");
        assertArrayEquals(stats, other.getParameter(A + STATS), "nor mu, sigma");
        assertArrayEquals(p[0], other.predict(inputs())[0]);
        return e;
      }
    }
  }

  private static void assertR301(GraftException e, String fragment) {
    assertEquals(RuntimeErrorCode.QUANTIZED_FILE_INVALID, e.getErrorCode(), e.getMessage());
    assertTrue(e.getMessage().startsWith("[GRAFT-R301] ") && e.getMessage().contains(fragment), e.getMessage());
  }

  @Test
  void hostileFilesAreR301AndChangeNothing(@TempDir Path dir) throws Exception {
    assertR301(hostile(dir, t -> {}, m -> m.put("format", "something-else")), "must have graft-quantized-adapter-1");
    assertR301(hostile(dir, t -> t.put(A, new TensorData(DType.U8, new long[] {7}, new byte[7])), m -> {}),
        "packed length 8 bytes (32 codes of 2 bits), got 7 bytes");
    assertR301(hostile(dir, t -> {
      byte[] big = new byte[1 << 20];
      t.put(A, new TensorData(DType.U8, new long[] {big.length}, big));
    }, m -> {}), "packed length 8 bytes");
    assertR301(hostile(dir, t -> t.put(A, new TensorData(DType.F32, new long[] {4}, new byte[16])), m -> {}),
        "U8 packed codes");
    assertR301(hostile(dir, t -> {}, m -> m.put(A, edit(m.get(A), o -> o.addProperty("bits", 4)))), "2 bits, got 4 bits");
    assertR301(hostile(dir, t -> {}, m -> m.put(A, edit(m.get(A), o -> o.addProperty("std", -1)))), "std >= 0");
    assertR301(hostile(dir, t -> {}, m -> m.put(A, edit(m.get(A), o -> o.addProperty("mean", "zero")))), "a number 'mean'");
    assertR301(hostile(dir, t -> {}, m -> m.put(A, edit(m.get(A), o -> o.remove("shape")))), "shape [8, 4]");
    assertR301(hostile(dir, t -> {}, m -> m.put(A, edit(m.get(A), o -> {
      com.google.gson.JsonArray s = new com.google.gson.JsonArray();
      s.add(4);
      s.add(8);
      o.add("shape", s);
    }))), "shape [8, 4], got [4, 8]");
    assertR301(hostile(dir, t -> {}, m -> m.remove(A)), "metadata entry");
    assertR301(hostile(dir, t -> t.remove(A), m -> {}), "a tensor '" + A + "'");
    GraftException extra = hostile(dir, t -> t.put("extra", TensorData.ofFloats(new long[] {1}, new float[] {1})), m -> {});
    assertEquals(RuntimeErrorCode.UNKNOWN_NAME, extra.getErrorCode(), extra.getMessage());
    GraftException stats = hostile(dir, t -> t.put(A + STATS, TensorData.ofFloats(new long[] {2}, new float[] {0, 1})), m -> {});
    assertEquals(RuntimeErrorCode.UNKNOWN_NAME, stats.getErrorCode(), "mu, sigma come from the metadata only");
    // One byte more than the codes need.
    assertR301(hostile(dir, t -> {
      byte[] codes = t.get("encoder.layer.0.attention.self.query.lora_B").data().clone();
      t.put("encoder.layer.0.attention.self.query.lora_B", new TensorData(DType.U8, new long[] {codes.length + 1},
          java.util.Arrays.copyOf(codes, codes.length + 1)));
    }, m -> {}), "packed length");
  }

  @Test
  void codesFloat32CannotTellApartAreR303AndChangeNothing(@TempDir Path dir) {
    GraftException e = hostile(dir, t -> {}, m -> m.put(A, edit(m.get(A), o -> {
      o.addProperty("mean", 1e8);
      o.addProperty("std", 1e-3);
    })));
    assertEquals(RuntimeErrorCode.QUANTIZED_CODES_UNREPRODUCIBLE, e.getErrorCode(), e.getMessage());
    assertTrue(e.getMessage().startsWith("[GRAFT-R303] ") && e.getMessage().contains("tensor '" + A + "' code "),
        e.getMessage());
  }

  @Test
  void aPaddingBitSetIsRefused() {
    byte[] packed = QuantizedAdapters.pack(new int[] {1, 0, 1}, 2);
    packed[0] |= (byte) 0b0100_0000;
    GraftException e = assertThrows(GraftException.class, () -> QuantizedAdapters.unpack("f", "t", packed, 3, 2));
    assertEquals(RuntimeErrorCode.QUANTIZED_FILE_INVALID, e.getErrorCode());
    assertEquals("[GRAFT-R301] f: tensor 't' must have zero padding bits after the last code, got bit 6 set", e.getMessage());
  }

  private static String edit(String json, Consumer<JsonObject> change) {
    JsonObject o = JsonParser.parseString(json).getAsJsonObject();
    change.accept(o);
    return o.toString();
  }
}
