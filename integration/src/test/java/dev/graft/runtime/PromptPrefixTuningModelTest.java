package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.ir.Tensors;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.text.TextTokenizer;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Prompt and prefix tuning on the real MiniLM host through the runtime: a few steps on one
 * repeated batch lower the loss; the saved adapter has PEFT's keys and shapes and config; loading
 * it into a fresh model gives bit-identical predictions.
 */
class PromptPrefixTuningModelTest {
  private static final String HOST = "all-minilm-l6-v2.onnx";
  private static final List<String> TEXTS = List.of("a wonderful, warm film", "dull and far too long",
      "I loved every minute", "the worst meal I have had");
  private static final long[] LABELS = {1, 0, 1, 0};
  private static HostModel host;
  private static Map<String, long[][]> batch;
  @TempDir Path dir;

  @BeforeAll
  static void read() throws Exception {
    try (InputStream in = PromptPrefixTuningModelTest.class.getClassLoader().getResourceAsStream(HOST)) {
      host = HostModel.read(in, HOST);
    }
    batch = new LinkedHashMap<>();
    try (TextTokenizer tok = TextTokenizer.fromClasspath("all-minilm-l6-v2-tokenizer.json", 12)) {
      List<Map<String, long[]>> rows = new ArrayList<>();
      for (String t : TEXTS) {
        rows.add(tok.encode(t));
      }
      int width = rows.stream().mapToInt(r -> r.get("input_ids").length).max().orElseThrow();
      for (String name : rows.get(0).keySet()) {
        // Padded to the longest text with zeros (attention_mask 0 there).
        batch.put(name, rows.stream().map(r -> java.util.Arrays.copyOf(r.get(name), width)).toArray(long[][]::new));
      }
    }
  }

  private static AdapterModel open(CompiledGraft graft) {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3));
  }

  /** Trains 8 steps on the batch; returns the first and last loss. */
  private static float[] train(AdapterModel model, float learningRate) {
    float first = model.trainStep(batch, LABELS, learningRate);
    float last = first;
    for (int i = 0; i < 7; i++) {
      last = model.trainStep(batch, LABELS, learningRate);
    }
    assertTrue(Float.isFinite(first) && Float.isFinite(last), first + " → " + last);
    System.out.println(model.getManifest().getAdapters(0).getKind() + ": loss " + first + " → " + last + " in 8 steps");
    return new float[] {first, last};
  }

  /** Saves, loads into a fresh model, and checks predictions are bit-identical; returns the saved tensors. */
  private Map<String, TensorData> roundTrip(CompiledGraft graft, AdapterModel model) throws Exception {
    float[][] before = model.predict(batch);
    model.saveAdapter(dir);
    try (AdapterModel fresh = open(graft)) {
      fresh.loadAdapter(dir);
      float[][] after = fresh.predict(batch);
      for (int i = 0; i < before.length; i++) {
        assertArrayEquals(before[i], after[i], 0f, "row " + i);
      }
    }
    return Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
  }

  private String config() throws Exception {
    return Files.readString(dir.resolve("adapter_config.json"), StandardCharsets.UTF_8);
  }

  @Test
  void promptTuningTrainsSavesAndLoadsOnMiniLm() throws Exception {
    CompiledGraft graft = Graft.host(host).promptTuning(o -> o.tokens(6)).classification(2).compile();
    try (AdapterModel model = open(graft)) {
      // The vocabulary init: every virtual token starts as a row of the word-embedding table.
      float[] p = model.getParameter("embeddings.word_embeddings.prompt_embeddings");
      TensorProto table = host.model().getGraph().getInitializerList().stream()
          .filter(t -> t.getName().equals("embeddings.word_embeddings.weight")).findFirst().orElseThrow();
      double[] rows = Tensors.readDoubles(table);
      for (int v = 0; v < 6; v++) {
        assertTrue(isRowOf(p, v, rows), "virtual token " + v + " is a vocabulary row");
      }
      float[] loss = train(model, 1e-2f);
      assertTrue(loss[1] < 0.8 * loss[0], "loss falls: " + loss[0] + " → " + loss[1]);
      Map<String, TensorData> saved = roundTrip(graft, model);
      assertEquals(List.of("base_model.model.classifier.bias", "base_model.model.classifier.weight", "prompt_embeddings"),
          saved.keySet().stream().sorted().toList());
      assertArrayEquals(new long[] {6, 384}, saved.get("prompt_embeddings").shape());
      assertArrayEquals(model.getParameter("embeddings.word_embeddings.prompt_embeddings"),
          saved.get("prompt_embeddings").toFloats(), 0f);
      var c = JsonParser.parseString(config()).getAsJsonObject();
      assertEquals("PROMPT_TUNING", c.get("peft_type").getAsString());
      assertEquals(6, c.get("num_virtual_tokens").getAsInt());
    }
  }

  private static boolean isRowOf(float[] p, int v, double[] table) {
    for (int r = 0; r < table.length / 384; r++) {
      boolean same = true;
      for (int k = 0; k < 384 && same; k++) {
        same = p[v * 384 + k] == (float) table[r * 384 + k];
      }
      if (same) {
        return true;
      }
    }
    return false;
  }

  @Test
  void prefixTuningTrainsSavesAndLoadsOnMiniLm() throws Exception {
    CompiledGraft graft = Graft.host(host).prefixTuning(o -> o.tokens(4)).classification(2).compile();
    try (AdapterModel model = open(graft)) {
      float[] loss = train(model, 1e-2f);
      assertTrue(loss[1] < 0.8 * loss[0], "loss falls: " + loss[0] + " → " + loss[1]);
      Map<String, TensorData> saved = roundTrip(graft, model);
      assertArrayEquals(new long[] {4, 6 * 2 * 384}, saved.get("prompt_embeddings").shape());
      var c = JsonParser.parseString(config()).getAsJsonObject();
      assertEquals("PREFIX_TUNING", c.get("peft_type").getAsString());
      assertEquals(6, c.get("num_layers").getAsInt());
      assertEquals(12, c.get("num_attention_heads").getAsInt());
    }
  }
}
