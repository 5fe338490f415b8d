package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.session.Device;
import dev.graft.runtime.session.HostWeights;
import dev.graft.runtime.state.ParameterInit;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class AdapterModelTest {
  @TempDir Path dir;

  private AdapterModel open() throws Exception {
    return AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)));
  }

  private static Map<String, long[][]> batch(long[][] ids) {
    long[][] mask = new long[ids.length][ids[0].length];
    return Map.of("input_ids", ids, "attention_mask", mask);
  }

  @Test
  void trainStepsUpdateParametersExactlyAndSwapBuffersWithoutCopying() throws Exception {
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {1f, -2f});
      FloatBuffer first = model.currentBuffer("p");
      float lr = 0.1f;
      float[] expected = {1f, -2f};
      float[] m = {0f, 0f};
      FloatBuffer[] seen = new FloatBuffer[4];
      for (int step = 1; step <= 4; step++) {
        float expectedLoss = expected[0] * expected[0] * TinyGraphs.HOST_W + expected[1] * expected[1] * TinyGraphs.HOST_W;
        float loss = model.trainStep(batch(new long[][] {{1, 2}, {3, 4}}), new long[] {0, 1}, lr);
        assertEquals(expectedLoss, loss, 1e-5f, "loss of step " + step);
        float t = lr * TinyGraphs.HOST_W;
        for (int i = 0; i < 2; i++) {
          m[i] += expected[i];
          expected[i] = expected[i] - t * expected[i];
        }
        seen[step - 1] = model.currentBuffer("p");
        // ONNX Runtime wrote the update straight into the spare buffer, which is now current.
        assertEquals(expected[0], seen[step - 1].get(0), 0f);
        assertEquals(expected[1], seen[step - 1].get(1), 0f);
      }
      assertNotSame(first, seen[0]);
      assertSame(first, seen[1]);
      assertSame(seen[0], seen[2]);
      assertSame(first, seen[3]);
      assertArrayEquals(expected, model.getParameter("p"), 0f);
      assertArrayEquals(m, model.optimizerState("p", false), 0f);
      // second moment accumulates the 1-based step numbers: 1 + 2 + 3 + 4
      assertArrayEquals(new float[] {10f, 10f}, model.optimizerState("p", true), 0f);
      assertEquals(4, model.getStep());
    }
  }

  @Test
  void predictUsesHostWeightAndCurrentParameters() throws Exception {
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {0.5f, -1f});
      float[][] logits = model.predict(batch(new long[][] {{1, 2, 3}, {10, 0, 0}}));
      // sum(ids) * host_w + p, host_w = 3 comes from the host file via addExternalInitializers
      assertArrayEquals(new float[] {6 * 3f + 0.5f, 6 * 3f - 1f}, logits[0], 0f);
      assertArrayEquals(new float[] {10 * 3f + 0.5f, 10 * 3f - 1f}, logits[1], 0f);
      model.trainStep(batch(new long[][] {{1}}), new long[] {1}, 0.1f);
      float[][] after = model.predict(batch(new long[][] {{0}}));
      assertArrayEquals(new float[] {0.5f - 0.3f * 0.5f, -1f + 0.3f}, after[0], 1e-7f);
    }
  }

  @Test
  void wrongInputShapesGiveNamedErrors() throws Exception {
    try (AdapterModel model = open()) {
      TensorMismatchException ragged =
          assertThrows(TensorMismatchException.class, () -> model.predict(batch(new long[][] {{1, 2}, {3}})));
      assertEquals("input_ids", ragged.getTensorName());
      assertTrue(ragged.getMessage().contains("row 1 has 1"), ragged.getMessage());

      TensorMismatchException seq =
          assertThrows(
              TensorMismatchException.class,
              () -> model.predict(Map.of("input_ids", new long[][] {{1, 2}}, "attention_mask", new long[][] {{1, 1, 1}})));
      assertEquals("attention_mask", seq.getTensorName());
      assertTrue(seq.getExpected().contains("sequence = 2"), seq.getExpected());
      assertEquals("int64[1, 3]", seq.getGiven());

      TensorMismatchException labels =
          assertThrows(
              TensorMismatchException.class,
              () -> model.trainStep(batch(new long[][] {{1}, {2}}), new long[] {0}, 0.1f));
      assertEquals("labels", labels.getTensorName());
      assertEquals("[1]", labels.getGiven());

      TensorMismatchException labelRange =
          assertThrows(
              TensorMismatchException.class, () -> model.trainStep(batch(new long[][] {{1}}), new long[] {2}, 0.1f));
      assertTrue(labelRange.getGiven().contains("labels[0] = 2"));

      TensorMismatchException param =
          assertThrows(TensorMismatchException.class, () -> model.setParameter("p", new float[3]));
      assertEquals("p", param.getTensorName());

      GraftException missing =
          assertThrows(GraftException.class, () -> model.predict(Map.of("input_ids", new long[][] {{1}})));
      assertEquals(RuntimeErrorCode.UNKNOWN_NAME.code(), missing.getCode());
      assertTrue(missing.getMessage().contains("missing [attention_mask]"), missing.getMessage());
      assertEquals(0, model.getStep(), "failed steps do not count");
    }
  }

  @Test
  void hostWithOtherShapeIsReportedAgainstTheGraph() throws Exception {
    Path host = dir.resolve("other.onnx");
    java.nio.file.Files.write(
        host,
        TinyGraphs.model(
                TinyGraphs.host().getGraph().toBuilder()
                    .setInitializer(0, TinyGraphs.floats("host_w", new long[] {2}, 1f, 2f))
                    .build())
            .toByteArray());
    TensorMismatchException e =
        assertThrows(
            TensorMismatchException.class,
            () -> AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(host)));
    assertEquals("host_w", e.getTensorName());
    assertTrue(e.getExpected().startsWith("float[1]"), e.getExpected());
    assertTrue(e.getGiven().startsWith("float[2]"), e.getGiven());
  }

  @Test
  void cudaOnTheCpuJarIsAClearError() throws Exception {
    Path host = TinyGraphs.writeHost(dir);
    ExecutionProviderException e =
        assertThrows(
            ExecutionProviderException.class,
            () -> AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(host).withDevice(Device.CUDA)));
    assertTrue(e.getMessage().contains("onnxruntime_gpu"), e.getMessage());
  }

  @Test
  void peftSaveAndLoadRoundTripThroughTheModel() throws Exception {
    Path adapter = dir.resolve("adapter");
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {0.25f, -0.75f});
      dev.graft.runtime.io.PeftAdapters.save(model, adapter);
      model.setParameter("p", new float[] {9f, 9f});
      dev.graft.runtime.io.PeftAdapters.load(model, adapter);
      assertArrayEquals(new float[] {0.25f, -0.75f}, model.getParameter("p"), 0f);
      float[][] logits = model.predict(batch(new long[][] {{0}}));
      assertArrayEquals(new float[] {0.25f, -0.75f}, logits[0], 0f);
    }
  }

  @Test
  void dropoutSeedInputIsFedWhenTheManifestNamesIt() throws Exception {
    dev.graft.spec.manifest.Manifest m = TinyGraphs.manifest().toBuilder()
        .setTrain(TinyGraphs.manifest().getTrain().toBuilder().setSeed("dropout_seed"))
        .build();
    AdapterGraphs graphs =
        AdapterGraphs.of(m, TinyGraphs.inference().toByteArray(), TinyGraphs.training(true).toByteArray());
    try (AdapterModel model = AdapterModel.open(graphs, ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)))) {
      model.setParameter("p", new float[] {1f, 1f});
      assertEquals(6f, model.trainStep(batch(new long[][] {{1}}), new long[] {0}, 0f), 0f);
      assertEquals(1, model.getStep());
    }
    // without the seed in the manifest, the graph's extra input is a clear mismatch
    AdapterGraphs unnamed = AdapterGraphs.of(
        TinyGraphs.manifest(), TinyGraphs.inference().toByteArray(), TinyGraphs.training(true).toByteArray());
    Path host = TinyGraphs.writeHost(dir);
    FormatException e =
        assertThrows(FormatException.class, () -> AdapterModel.open(unnamed, ModelOptions.defaults().withHost(host)));
    assertTrue(e.getMessage().contains("graph inputs the manifest does not name [dropout_seed]"), e.getMessage());
  }

  @Test
  void closedModelRefusesWork() throws Exception {
    AdapterModel model = open();
    model.close();
    GraftException e = assertThrows(GraftException.class, () -> model.getParameter("p"));
    assertEquals(RuntimeErrorCode.CLOSED.code(), e.getCode());
  }

  @Test
  void initializationIsSeededAndFollowsTheManifest() {
    Parameter kaiming =
        Parameter.newBuilder().setName("a").setInit(Init.KAIMING_UNIFORM).setInitScale(16).build();
    float[] a1 = ParameterInit.initialValues(kaiming, 1000, 7, HostWeights.none());
    float[] a2 = ParameterInit.initialValues(kaiming, 1000, 7, HostWeights.none());
    float[] a3 = ParameterInit.initialValues(kaiming, 1000, 8, HostWeights.none());
    assertArrayEquals(a1, a2, 0f);
    assertTrue(!java.util.Arrays.equals(a1, a3));
    float max = 0;
    for (float v : a1) {
      max = Math.max(max, Math.abs(v));
    }
    assertTrue(max <= 0.25f && max > 0.24f, "bound 1/sqrt(16) = 0.25, max " + max);

    Parameter normal = Parameter.newBuilder().setName("h").setInit(Init.NORMAL).setInitScale(0.02).build();
    float[] h = ParameterInit.initialValues(normal, 20000, 1, HostWeights.none());
    double sq = 0;
    for (float v : h) {
      sq += v * v;
    }
    assertEquals(0.02, Math.sqrt(sq / h.length), 0.001);

    Parameter zeros = Parameter.newBuilder().setName("b").setInit(Init.ZEROS).build();
    assertArrayEquals(new float[5], ParameterInit.initialValues(zeros, 5, 3, HostWeights.none()), 0f);
    assertThrows(FormatException.class, () -> ParameterInit.initialValues(Parameter.newBuilder().setName("x").build(), 1, 1, HostWeights.none()));
  }
}
