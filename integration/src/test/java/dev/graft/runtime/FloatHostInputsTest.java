package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.dsl.Graft;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.HostFeed;
import dev.graft.runtime.data.HostTensor;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/**
 * Float host inputs through the facade: the torch ViT fixture (float32 {@code pixel_values [batch,
 * 3, 16, 16]}) with the LoRA of its PyTorch reference trains through {@link AdapterModel#trainStep(HostFeed,
 * long[], float)} along PyTorch's AdamW loss curve; a {@link Batch} of pixels trains alike; an
 * image embeds alone as in its batch; and what does not fit the manifest is refused with its
 * code, leaving the model unchanged.
 */
class FloatHostInputsTest {
  @TempDir static Path dir;
  private static JsonObject ref;
  private static ModelProto vit;
  private static Path hostFile;
  private static HostTensor pixels;
  private static long[] labels;

  @BeforeAll
  static void load() throws IOException {
    ref = JsonParser.parseString(new String(resource("vit_opset17.json"), StandardCharsets.UTF_8)).getAsJsonObject();
    vit = ModelProto.parseFrom(resource("vit_opset17.onnx"));
    hostFile = dir.resolve("vit_opset17.onnx");
    Files.write(hostFile, vit.toByteArray());
    JsonObject in = ref.getAsJsonObject("inputs").getAsJsonObject("pixel_values");
    JsonArray shape = in.getAsJsonArray("shape");
    long[] dims = new long[shape.size()];
    for (int i = 0; i < dims.length; i++) {
      dims[i] = shape.get(i).getAsLong();
    }
    pixels = HostTensor.floats(dims, floats(in.getAsJsonArray("values")));
    JsonArray l = ref.getAsJsonArray("labels");
    labels = new long[l.size()];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = (long) l.get(i).getAsDouble();
    }
  }

  private static CompiledGraft lora() {
    return Graft.host(HostModel.of("vit", vit)).name("VitLora")
        .lora(ref.get("target").getAsString(), o -> o.rank(ref.get("rank").getAsInt()).alpha(ref.get("alpha").getAsDouble()))
        .classification(3, c -> c.pooling(ClassificationSpec.Pooling.FIRST_TOKEN).output("last_hidden_state"))
        .compile();
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(hostFile).withIntraOpThreads(1));
  }

  private static void setReference(AdapterModel model) {
    for (var e : ref.getAsJsonObject("parameters").entrySet()) {
      model.setParameter(e.getKey(), floats(e.getValue().getAsJsonObject().getAsJsonArray("values")));
    }
  }

  @Test
  void pixelsTrainAlongPyTorchsAdamWCurveThroughTheFacade() {
    JsonObject adamw = ref.getAsJsonObject("adamw");
    JsonArray want = adamw.getAsJsonArray("losses");
    float lr = adamw.get("learning_rate").getAsFloat();
    CompiledGraft graft = lora();
    try (AdapterModel viaFeed = open(graft); AdapterModel viaBatch = open(graft)) {
      setReference(viaFeed);
      setReference(viaBatch);
      HostFeed feed = HostFeed.of("pixel_values", pixels);
      Batch batch = new Batch(feed, labels);
      double worst = 0;
      float[] losses = new float[20];
      for (int step = 0; step < 20; step++) {
        float loss = viaFeed.trainStep(feed, labels, lr);
        losses[step] = loss;
        double expected = want.get(step).getAsDouble();
        double rel = Math.abs(loss - expected) / expected;
        worst = Math.max(worst, rel);
        assertTrue(rel < 1e-4, "step " + (step + 1) + ": " + loss + " vs PyTorch " + expected);
        assertEquals(loss, viaBatch.trainStep(batch, lr), 0f, "a Batch of pixels trains as its feed");
      }
      System.out.printf("ViT LoRA through AdapterModel on float pixels: 20 AdamW steps %.6f → %.6f (PyTorch %.6f → %.6f),"
          + " worst relative error %.2e%n", losses[0], losses[19],
          want.get(0).getAsDouble(), want.get(19).getAsDouble(), worst);
      assertEquals(20, viaFeed.getStep());
      float[][] logits = viaFeed.predict(feed);
      assertEquals(2, logits.length);
      assertEquals(3, logits[0].length);
      assertEquals(labels[0], argmax(logits[0]), "after training the first image is its class");
      assertEquals(labels[1], argmax(logits[1]), "after training the second image is its class");
    }
  }

  @Test
  void anImageEmbedsAloneAsInItsBatchAndTheTensorKeepsItsOwnCopy() {
    try (AdapterModel model = open(lora())) {
      float[] values = pixels.floats();
      HostFeed feed = HostFeed.of("pixel_values", pixels);
      float[][] embedding = model.embed(feed);
      values[0] = 1e6f; // the tensor copied its values: changing the array does not change what is fed
      assertArrayEquals(embedding[0], model.embed(feed)[0], 0f);
      // the second image alone embeds as it did in the batch (no row leaks into another)
      float[] second = java.util.Arrays.copyOfRange(pixels.floats(), 3 * 16 * 16, 2 * 3 * 16 * 16);
      float[][] alone = model.embed(HostFeed.of("pixel_values", HostTensor.floats(new long[] {1, 3, 16, 16}, second)));
      assertArrayEquals(embedding[1], alone[0], 1e-5f);
      assertEquals(32, embedding[0].length);
    }
  }

  @Test
  void whatDoesNotFitTheManifestIsRefusedWithItsCodeAndTheModelIsUnchanged() {
    try (AdapterModel model = open(lora())) {
      Map<String, float[]> before = model.getParameterValues();
      int at = ((1 * 3 + 2) * 16 + 3) * 16 + 4;
      float[] nan = pixels.floats();
      nan[at] = Float.NaN;
      HostFeed withNan = HostFeed.of("pixel_values", HostTensor.floats(new long[] {2, 3, 16, 16}, nan));
      assertCode(RuntimeErrorCode.HOST_INPUT_NOT_FINITE, "host input 'pixel_values' must be finite, got NaN at [1, 2, 3, 4]",
          () -> model.trainStep(withNan, labels, 0.01f));
      float[] inf = pixels.floats();
      inf[7] = Float.NEGATIVE_INFINITY;
      assertCode(RuntimeErrorCode.HOST_INPUT_NOT_FINITE, "got -Infinity at [0, 0, 0, 7]",
          () -> model.predict(HostFeed.of("pixel_values", HostTensor.floats(new long[] {2, 3, 16, 16}, inf))));
      assertCode(RuntimeErrorCode.HOST_INPUT_TYPE, "host input 'pixel_values': expected float[batch_size, 3, 16, 16],"
          + " given int64[2, 768]", () -> model.trainStep(Map.of("pixel_values", new long[2][768]), labels, 0.01f));
      assertCode(RuntimeErrorCode.HOST_INPUT_TYPE, "expected float[batch_size, 3, 16, 16], given float64[2, 3, 16, 16]",
          () -> model.predict(HostFeed.of("pixel_values", HostTensor.ofArray(new double[2][3][16][16]))));
      assertCode(RuntimeErrorCode.TENSOR_MISMATCH, "expected float[batch_size, 3, 16, 16], given rank 3 float32[2, 3, 256]",
          () -> model.predict(HostFeed.of("pixel_values", HostTensor.ofArray(new float[2][3][256]))));
      assertCode(RuntimeErrorCode.TENSOR_MISMATCH, "expected float[batch_size, 3, 16, 16], given float32[2, 3, 8, 8]",
          () -> model.predict(HostFeed.of("pixel_values", HostTensor.of(new float[2][3][8][8]))));
      assertCode(RuntimeErrorCode.UNKNOWN_NAME, "missing [pixel_values], unknown [pixels]",
          () -> model.predict(HostFeed.of("pixels", pixels)));
      assertEquals(0, model.getStep(), "no refused step counted");
      Map<String, float[]> after = model.getParameterValues();
      before.forEach((name, v) -> assertArrayEquals(v, after.get(name), 0f, name));
    }
  }

  @Test
  void aHostTensorHoldsExactlyItsShapeAndIsReadOnlyAsWhatItIs() {
    assertCode(RuntimeErrorCode.HOST_TENSOR_SHAPE, "host tensor shape [2, 3] holds 6 elements, given 5 float32 values",
        () -> HostTensor.floats(new long[] {2, 3}, new float[5]));
    assertCode(RuntimeErrorCode.HOST_TENSOR_SHAPE, "must not be negative, got [2, -1]",
        () -> HostTensor.longs(new long[] {2, -1}, new long[0]));
    assertCode(RuntimeErrorCode.HOST_TENSOR_SHAPE, "holds more than 2147483647 elements",
        () -> HostTensor.floats(new long[] {1L << 20, 1L << 12}, new float[0]));
    assertCode(RuntimeErrorCode.HOST_TENSOR_SHAPE, "a nested array of float, double, long, int or boolean, given String[][]",
        () -> HostTensor.ofArray(new String[1][1]));
    assertCode(RuntimeErrorCode.TENSOR_MISMATCH, "row 1 has 1 values, the first of its level 2",
        () -> HostFeed.ofRows(Map.of("input_ids", new long[][] {{1, 2}, {3}})));
    assertCode(RuntimeErrorCode.TENSOR_MISMATCH, "array [1, 0] has 2 values, the first of its level 3",
        () -> HostTensor.ofArray(new float[][][] {{{1, 2, 3}}, {{1, 2}}}));
    assertCode(RuntimeErrorCode.HOST_TENSOR_KIND, "reading int64 elements needs a host tensor of int64, given float32[2, 3, 16, 16]",
        pixels::longs);
    assertCode(RuntimeErrorCode.HOST_TENSOR_KIND, "host input 'pixel_values': token rows need an int64 or int32 host tensor",
        () -> new Batch(HostFeed.of("pixel_values", pixels), labels).inputs());

    HostTensor t = HostTensor.ofArray(new int[][][] {{{1, 2}, {3, 4}, {5, 6}}});
    assertEquals(HostTensor.Kind.INT32, t.kind());
    assertArrayEquals(new long[] {1, 3, 2}, t.shape());
    assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, t.ints());
    assertEquals(6, t.longAt(5));
    assertArrayEquals(new long[][] {{1, 2, 3}, {4, 5, 6}}, HostTensor.ints(new long[] {2, 3}, t.ints()).rows());
    long[] shape = t.shape();
    shape[0] = 9;
    assertEquals(1, t.dim(0), "the shape is the tensor's own");
    HostTensor b = HostTensor.booleans(new long[] {2}, new boolean[] {true, false});
    assertEquals("bool[2]", b.describe());
  }

  private static long argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      best = v[i] > v[best] ? i : best;
    }
    return best;
  }

  private static void assertCode(RuntimeErrorCode code, String detail, Executable call) {
    GraftException e = assertThrows(GraftException.class, call);
    assertEquals(code, e.getErrorCode(), e.getMessage());
    assertTrue(e.getMessage().startsWith("[" + code.code() + "] "), e.getMessage());
    assertTrue(e.getMessage().contains(detail), e.getMessage());
  }

  private static float[] floats(JsonArray a) {
    float[] f = new float[a.size()];
    for (int i = 0; i < f.length; i++) {
      f[i] = (float) a.get(i).getAsDouble();
    }
    return f;
  }

  private static byte[] resource(String file) throws IOException {
    try (InputStream in = FloatHostInputsTest.class.getResourceAsStream("/hosts/torch/" + file)) {
      assertNotNull(in, file);
      return in.readAllBytes();
    }
  }
}
