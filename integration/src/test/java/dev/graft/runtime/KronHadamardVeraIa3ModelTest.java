package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * LoKr, LoHa, VeRA and IA³ with their default options and default sites on the real
 * all-MiniLM-L6-v2, through the runtime: each starts as the host (its predictions equal a
 * head-only graft's of the same seed), trains on a repeated batch, and saves a PEFT folder whose
 * keys and shapes are PEFT's and which a fresh model loads to bit-identical predictions.
 */
class KronHadamardVeraIa3ModelTest {
  private static final String HOST = "all-minilm-l6-v2.onnx";
  private static final long[][] IDS = {{101, 2023, 3185, 2001, 2307, 102}, {101, 6659, 2143, 102, 0, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}};
  private static final long[] LABELS = {1, 0};
  private static final String Q0 = "base_model.model.encoder.layer.0.attention.self.query.";
  private static HostModel host;
  private static float[][] hostPredictions;

  @BeforeAll
  static void readHost() {
    try (InputStream in = KronHadamardVeraIa3ModelTest.class.getClassLoader().getResourceAsStream(HOST)) {
      host = HostModel.read(in, HOST);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try (AdapterModel headOnly = open(Graft.host(host).classification(2).compile())) {
      hostPredictions = headOnly.predict(inputs());
    }
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3));
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    m.put("token_type_ids", new long[2][6]);
    return m;
  }

  /**
   * Runs the whole check for {@code kind} with default options on default sites; returns the
   * saved state dict's shapes by key and the saved config.
   */
  private static Result check(String kind, Path dir) {
    CompiledGraft graft = Graft.host(host).adapter(kind, "", o -> {}).classification(2).compile();
    float[][] before;
    Map<String, float[]> initial;
    try (AdapterModel model = open(graft)) {
      float[][] start = model.predict(inputs());
      for (int i = 0; i < start.length; i++) {
        assertArrayEquals(hostPredictions[i], start[i], 0f, kind + " starts as the host, row " + i);
      }
      initial = model.getParameterValues();
      float first = model.trainStep(inputs(), LABELS, 1e-3f);
      float last = first;
      for (int i = 0; i < 7; i++) {
        last = model.trainStep(inputs(), LABELS, 1e-3f);
        assertTrue(Float.isFinite(last), kind + " loss finite");
      }
      assertTrue(last < first, kind + " loss falls: " + first + " → " + last);
      Map<String, float[]> trained = model.getParameterValues();
      for (var p : model.getParameters()) {
        boolean changed = !Arrays.equals(initial.get(p.getName()), trained.get(p.getName()));
        assertEquals(!p.getFrozen(), changed, p.getName() + (p.getFrozen() ? " frozen, unchanged" : " trained"));
      }
      before = model.predict(inputs());
      model.saveAdapter(dir);
    }
    try (AdapterModel fresh = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(99))) {
      fresh.loadAdapter(dir);
      float[][] after = fresh.predict(inputs());
      for (int i = 0; i < before.length; i++) {
        assertArrayEquals(before[i], after[i], 0f, kind + " reloaded, row " + i);
      }
    }
    Map<String, List<Long>> shapes = new TreeMap<>();
    for (Map.Entry<String, TensorData> e : Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors().entrySet()) {
      shapes.put(e.getKey(), Arrays.stream(e.getValue().shape()).boxed().toList());
    }
    assertEquals(List.of(2L, 384L), shapes.get("base_model.model.classifier.weight"));
    try {
      JsonObject config = JsonParser.parseString(
          Files.readString(dir.resolve(PeftAdapters.CONFIG_FILE), StandardCharsets.UTF_8)).getAsJsonObject();
      return new Result(shapes, config);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private record Result(Map<String, List<Long>> shapes, JsonObject config) {}

  @Test
  void lokr(@TempDir Path dir) {
    Result r = check("lokr", dir);
    // 384 = 16·24: W1 [16, 16] full, W2 [24, 24] as rank 8 (8 < 24/2): 12 sites × 3 + head 2.
    assertEquals(38, r.shapes().size());
    assertEquals(List.of(16L, 16L), r.shapes().get(Q0 + "lokr_w1"));
    assertEquals(List.of(24L, 8L), r.shapes().get(Q0 + "lokr_w2_a"));
    assertEquals(List.of(8L, 24L), r.shapes().get(Q0 + "lokr_w2_b"));
    assertEquals("LOKR", r.config().get("peft_type").getAsString());
    assertEquals(12, r.config().getAsJsonArray("target_modules").size());
  }

  @Test
  void loha(@TempDir Path dir) {
    Result r = check("loha", dir);
    assertEquals(50, r.shapes().size());
    assertEquals(List.of(384L, 8L), r.shapes().get(Q0 + "hada_w1_a"));
    assertEquals(List.of(8L, 384L), r.shapes().get(Q0 + "hada_w2_b"));
    assertEquals("LOHA", r.config().get("peft_type").getAsString());
  }

  @Test
  void vera(@TempDir Path dir) {
    Result r = check("vera", dir);
    assertEquals(2 + 24 + 2, r.shapes().size());
    assertEquals(List.of(256L, 384L), r.shapes().get("base_model.vera_A"));
    assertEquals(List.of(384L, 256L), r.shapes().get("base_model.vera_B"));
    assertEquals(List.of(256L), r.shapes().get(Q0 + "vera_lambda_d"));
    assertEquals(List.of(384L), r.shapes().get(Q0 + "vera_lambda_b"));
    assertEquals("VERA", r.config().get("peft_type").getAsString());
    assertEquals(256, r.config().get("r").getAsInt());
  }

  @Test
  void ia3(@TempDir Path dir) {
    Result r = check("ia3", dir);
    assertEquals(18 + 2, r.shapes().size());
    assertEquals(List.of(384L, 1L), r.shapes().get("base_model.model.encoder.layer.0.attention.self.key.ia3_l"));
    assertEquals(List.of(1L, 1536L), r.shapes().get("base_model.model.encoder.layer.0.output.dense.ia3_l"));
    assertFalse(r.shapes().containsKey("base_model.model.encoder.layer.0.attention.output.dense.ia3_l"));
    assertEquals("IA3", r.config().get("peft_type").getAsString());
    assertEquals(6, r.config().getAsJsonArray("feedforward_modules").size());
  }
}
