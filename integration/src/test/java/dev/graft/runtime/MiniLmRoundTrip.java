package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.session.HostWeights;
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

/**
 * The runtime round trip the adapter-kind tests share on the real all-MiniLM-L6-v2: compile a
 * declaration with a 2-label head, train a few steps on one repeated batch (the loss must fall),
 * save, load into a fresh model (predictions must be bit-identical), and return what was saved.
 */
final class MiniLmRoundTrip {
  private MiniLmRoundTrip() {}

  private static final String HOST = "all-minilm-l6-v2.onnx";
  private static final long[][] IDS = {{101, 2023, 3185, 2001, 2307, 102}, {101, 6659, 2833, 999, 102, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0}};
  private static final long[] LABELS = {1, 0};
  private static HostModel host;

  static synchronized HostModel host() {
    if (host == null) {
      try (InputStream in = MiniLmRoundTrip.class.getClassLoader().getResourceAsStream(HOST)) {
        host = HostModel.read(in, HOST);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
    return host;
  }

  static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    m.put("token_type_ids", new long[2][6]);
    return m;
  }

  static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(5));
  }

  /**
   * Trains {@code declare}'s graft 4 steps, saves, reloads into a fresh model; returns the saved
   * tensors by key after checking the loss falls and predictions survive the round trip.
   */
  static Map<String, TensorData> trainSaveLoad(UnaryOperator<Graft> declare, float lr, Path dir) {
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

  static float[] hostValues(String name) {
    try (HostWeights w = HostWeights.readResource(MiniLmRoundTrip.class.getClassLoader(), HOST, List.of(name))) {
      FloatBuffer b = w.weights().get(name).data().duplicate().clear().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      float[] out = new float[b.remaining()];
      b.get(out);
      return out;
    }
  }

  static void assertShape(Map<String, TensorData> saved, String key, long... shape) {
    assertTrue(saved.containsKey(key), key + " in " + saved.keySet());
    assertArrayEquals(shape, saved.get(key).shape(), key);
  }

}
