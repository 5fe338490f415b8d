package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.dsl.Graft;
import dev.graft.dsl.compile.CompiledGraft;
import dev.graft.dsl.compile.HostModel;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bottleneck, parallel, Hydra, BitFit, LayerNorm and full tuning through the runtime on the real
 * all-MiniLM-L6-v2: a few training steps on one repeated batch lower the loss, the saved adapter
 * holds the expected keys and shapes, and loading it into a fresh model gives bit-identical
 * predictions. Host-tensor parameters start as the host's own values.
 */
class BottleneckAdaptersTest {
  private static final String HOST = "all-minilm-l6-v2.onnx";
  private static final long[][] IDS = {{101, 2023, 3185, 2001, 2307, 102}, {101, 6659, 2833, 999, 102, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0}};
  private static final long[] LABELS = {1, 0};
  private static HostModel host;

  private static synchronized HostModel host() {
    if (host == null) {
      try (InputStream in = BottleneckAdaptersTest.class.getClassLoader().getResourceAsStream(HOST)) {
        host = HostModel.read(in, HOST);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return host;
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    m.put("token_type_ids", new long[2][6]);
    return m;
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(AdapterGraphs.of(graft), ModelOptions.defaults().withSeed(5));
  }

  /**
   * Trains {@code declare}'s graft 4 steps, saves, reloads into a fresh model; returns the saved
   * tensors by key after checking the loss falls and predictions survive the round trip.
   */
  private static Map<String, TensorData> trainSaveLoad(UnaryOperator<Graft> declare, float lr, Path dir) {
    CompiledGraft graft = declare.apply(Graft.host(host()).name("Adapted")).classification(2).compile();
    float[][] before;
    try (AdapterModel model = open(graft)) {
      for (Parameter p : model.getParameters()) {
        if (p.getInit() == Init.HOST_COPY) {
          assertArrayEquals(hostValues(p.getInitSource()), model.getParameter(p.getName()), 0f, p.getName());
        }
      }
      float first = model.trainStep(inputs(), LABELS, lr);
      float last = first;
      for (int i = 0; i < 4; i++) {
        last = model.trainStep(inputs(), LABELS, lr);
      }
      assertTrue(Float.isFinite(first) && last < first, "loss falls: " + first + " → " + last);
      before = model.predict(inputs());
      model.saveAdapter(dir);
    }
    try (AdapterModel fresh = open(graft)) {
      float[][] untrained = fresh.predict(inputs());
      assertFalse(java.util.Arrays.equals(before[0], untrained[0]), "training changed the predictions");
      fresh.loadAdapter(dir);
      float[][] after = fresh.predict(inputs());
      for (int i = 0; i < before.length; i++) {
        assertArrayEquals(before[i], after[i], 0f, "row " + i);
      }
    }
    return Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
  }

  private static float[] hostValues(String name) {
    try (HostWeights w = HostWeights.readResource(BottleneckAdaptersTest.class.getClassLoader(), HOST, List.of(name))) {
      FloatBuffer b = w.weights().get(name).data().duplicate().clear().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      float[] out = new float[b.remaining()];
      b.get(out);
      return out;
    }
  }

  private static void assertShape(Map<String, TensorData> saved, String key, long... shape) {
    assertTrue(saved.containsKey(key), key + " in " + saved.keySet());
    assertArrayEquals(shape, saved.get(key).shape(), key);
  }

  @Test
  void bottleneckTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.bottleneck(), 1e-2f, dir);
    assertEquals(6 * 4 + 2, saved.size(), "4 tensors at each layer's feed-forward output, and the head");
    String base = "base_model.model.encoder.layer.3.output.dense.adapters.default.";
    assertShape(saved, base + "adapter_down.0.weight", 24, 384);
    assertShape(saved, base + "adapter_down.0.bias", 24);
    assertShape(saved, base + "adapter_up.weight", 384, 24);
    assertShape(saved, base + "adapter_up.bias", 384);
    assertShape(saved, "base_model.model.classifier.weight", 2, 384);
  }

  @Test
  void parallelAdapterAndHydraTrainSaveAndLoad(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(
        g -> g.parallelAdapter("", o -> o.layers(0, 1)).hydra("", o -> o.layers(4, 5).nonlinearity("tanh")),
        1e-2f, dir.resolve("both"));
    assertEquals(2 * 4 + 2 * 8 + 2, saved.size());
    assertShape(saved, "base_model.model.encoder.layer.1.output.adapters.default.adapter_down.0.weight", 192, 384);
    assertShape(saved, "base_model.model.encoder.layer.1.output.adapters.default.adapter_up.weight", 384, 192);
    assertShape(saved, "base_model.model.encoder.layer.5.output.hydra.default.parallel.adapter_down.0.weight", 24, 384);
    assertShape(saved, "base_model.model.encoder.layer.5.output.hydra.default.sequential.adapter_up.bias", 384);
  }

  @Test
  void hostTensorTuningStartsFromTheHostTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(
        g -> g.bitFit("", o -> o.layers(5)).layerNormTuning(".*embeddings.*", o -> {})
            .trainModules(".*/attention/self/query/MatMul", o -> o.layers(4)),
        1e-3f, dir);
    assertShape(saved, "base_model.model.encoder.layer.5.attention.self.query.bias", 384);
    assertShape(saved, "base_model.model.encoder.layer.5.output.LayerNorm.bias", 384);
    assertShape(saved, "base_model.model.embeddings.LayerNorm.weight", 384);
    assertShape(saved, "base_model.model.embeddings.LayerNorm.bias", 384);
    assertShape(saved, "base_model.model.encoder.layer.4.attention.self.query.weight", 384, 384);
    assertShape(saved, "base_model.model.encoder.layer.4.attention.self.query.bias", 384);
    assertEquals(8 + 2 + 2 + 2, saved.size(), "BitFit 6 linear + 2 LayerNorm biases, 2 embedding norms, query, head");
  }
}
