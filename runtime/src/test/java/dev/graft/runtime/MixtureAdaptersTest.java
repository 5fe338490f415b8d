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
 * Mixture of LoRA experts and multi-head routing through the runtime on the real
 * all-MiniLM-L6-v2: a few training steps on one repeated batch lower the loss (the task loss plus
 * the load-balancing terms), the saved adapter holds the expected keys and shapes, and loading it
 * into a fresh model gives bit-identical predictions.
 */
class MixtureAdaptersTest {
  private static final String HOST = "all-minilm-l6-v2.onnx";
  private static final long[][] IDS = {{101, 2023, 3185, 2001, 2307, 102}, {101, 6659, 2833, 999, 102, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0}};
  private static final long[] LABELS = {1, 0};
  private static HostModel host;

  private static synchronized HostModel host() {
    if (host == null) {
      try (InputStream in = MixtureAdaptersTest.class.getClassLoader().getResourceAsStream(HOST)) {
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
    try (HostWeights w = HostWeights.readResource(MixtureAdaptersTest.class.getClassLoader(), HOST, List.of(name))) {
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
  void topKMixtureWithExpertsPerLayerTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.mixtureOfLora("", o -> o.expertsPerLayer(2, 2, 2, 4, 4, 8)
        .router("top_k").topK(2).rank(4)), 1e-2f, dir);
    assertEquals(12 * 3 + 2, saved.size(), "router, stacked A and B at 12 query/value sites, and the head");
    String base = "base_model.model.encoder.layer.5.attention.self.value.mixture_lora.";
    assertShape(saved, base + "router.weight", 8, 384);
    assertShape(saved, base + "lora_A.weight", 32, 384);
    assertShape(saved, base + "lora_B.weight", 384, 32);
    assertShape(saved, "base_model.model.encoder.layer.0.attention.self.query.mixture_lora.lora_A.weight", 8, 384);
  }

  @Test
  void softMixtureTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.mixtureOfLora("", o -> o.experts(3).rank(2).layers(4, 5)),
        1e-2f, dir);
    assertEquals(4 * 3 + 2, saved.size());
    assertShape(saved, "base_model.model.encoder.layer.4.attention.self.query.mixture_lora.router.weight", 3, 384);
  }

  @Test
  void multiHeadRoutingTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.multiHeadRouting("", o -> o.pieces(4).heads(4).rank(4)),
        1e-2f, dir);
    assertEquals(2 + 12 + 2, saved.size(), "the shared pieces, 12 routing logits and the head");
    assertShape(saved, "base_model.model.multi_head_routing.384x384.lora_A", 4, 4, 96, 4);
    assertShape(saved, "base_model.model.multi_head_routing.384x384.lora_B", 4, 4, 4, 96);
    assertShape(saved, "base_model.model.encoder.layer.2.attention.self.query.multi_head_routing.logits", 4, 4);
  }
}
