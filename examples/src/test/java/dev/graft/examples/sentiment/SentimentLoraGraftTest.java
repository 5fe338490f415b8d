package dev.graft.examples.sentiment;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.data.LabelledText;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.text.TextTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The class javac generated from {@link SentimentLora}, run on the real all-MiniLM-L6-v2 host:
 * its resources, a few training steps, and a PEFT save that reloads to identical predictions.
 */
class SentimentLoraGraftTest {
  static Batch batch;

  @TempDir Path dir;

  @BeforeAll
  static void tokenize() {
    List<LabelledText> texts =
        LabelledText.readTsv(SentimentLoraGraftTest.class.getClassLoader(), SentimentData.DATA + "yelp.tsv");
    try (TextTokenizer tokenizer = TextTokenizer.fromClasspath(SentimentData.TOKENIZER, 32)) {
      // 8 negative and 8 positive sentences: the file lists 500 of each.
      List<LabelledText> picked = new java.util.ArrayList<>(texts.subList(0, 8));
      picked.addAll(texts.subList(texts.size() - 8, texts.size()));
      List<Example> examples = SentimentData.examples(tokenizer, picked);
      batch = Batch.of(examples, SentimentLoraGraft.INPUT_NAMES);
    }
  }

  @Test
  void resourcesLieBesideTheGeneratedClassWithoutTheHostWeights() throws IOException {
    for (String suffix : List.of(".infer.onnx", ".train.onnx", ".update.onnx", ".merge.onnx", ".manifest.textproto")) {
      try (InputStream in = SentimentLoraGraft.class.getResourceAsStream(SentimentLoraGraft.NAME + suffix)) {
        assertNotNull(in, SentimentLoraGraft.NAME + suffix);
        long size = in.readAllBytes().length;
        // The host's weights are 90 MB; the graphs declare them as external data.
        assertTrue(size > 1_000 && size < 1_000_000, suffix + " is " + size + " bytes");
      }
    }
    assertEquals(2, SentimentLoraGraft.NUM_LABELS);
    assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), SentimentLoraGraft.INPUT_NAMES);
  }

  @Test
  void trainsSavesInPeftLayoutAndReloadsToIdenticalPredictions() throws IOException {
    long[][] ids = batch.inputs().get("input_ids");
    long[][] mask = batch.inputs().get("attention_mask");
    long[][] types = batch.inputs().get("token_type_ids");
    float[][] trained;
    try (SentimentLoraGraft graft = SentimentLoraGraft.load(ModelOptions.defaults().withSeed(3))) {
      // 6 layers × (query, value) × (A [384, 8] + B [8, 384]) + head (384 × 2 + 2).
      assertEquals(12 * 2 * 384 * 8 + 384 * 2 + 2, graft.model().getParameterCount());
      float first = graft.trainStep(ids, mask, types, batch.labels(), 2e-3f);
      float last = first;
      for (int i = 0; i < 14; i++) {
        last = graft.trainStep(ids, mask, types, batch.labels(), 2e-3f);
      }
      assertTrue(first > 0.5 && first < 0.9, "initial loss near ln 2: " + first);
      assertTrue(last < first / 2, "loss on one repeated batch falls by half: " + first + " -> " + last);
      float[] loraB = graft.model().getParameter("encoder.layer.0.attention.self.query.lora_B");
      assertTrue(maxAbs(loraB) > 0, "lora_B starts at zero and must have moved");
      trained = graft.predict(ids, mask, types);
      graft.model().saveAdapter(dir);
    }

    Map<String, TensorData> saved = Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
    Pattern key = Pattern.compile(
        "base_model\\.model\\.encoder\\.layer\\.([0-5])\\.attention\\.self\\.(query|value)\\.lora_([AB])\\.weight");
    TreeSet<String> loraKeys = new TreeSet<>();
    for (Map.Entry<String, TensorData> e : saved.entrySet()) {
      Matcher m = key.matcher(e.getKey());
      if (m.matches()) {
        loraKeys.add(e.getKey());
        long[] expected = m.group(3).equals("A") ? new long[] {8, 384} : new long[] {384, 8};
        assertArrayEquals(expected, e.getValue().shape(), e.getKey() + " has PEFT shape [r, in] / [out, r]");
      }
    }
    assertEquals(24, loraKeys.size(), "keys: " + saved.keySet());
    assertArrayEquals(new long[] {2, 384}, saved.get("base_model.model.classifier.weight").shape());
    assertEquals(26, saved.size(), "keys: " + saved.keySet());
    JsonObject config = JsonParser.parseString(
        Files.readString(dir.resolve(PeftAdapters.CONFIG_FILE), StandardCharsets.UTF_8)).getAsJsonObject();
    assertEquals("LORA", config.get("peft_type").getAsString());
    assertEquals(8, config.get("r").getAsInt());
    assertEquals(16, config.get("lora_alpha").getAsInt());
    assertEquals("[\"query\",\"value\"]", config.get("target_modules").toString());

    try (SentimentLoraGraft reloaded =
        SentimentLoraGraft.load(ModelOptions.defaults().withSeed(99).withTraining(false))) {
      float[][] fresh = reloaded.predict(ids, mask, types);
      assertFalse(Arrays.deepEquals(trained, fresh), "a fresh head predicts differently before the adapter is loaded");
      reloaded.model().loadAdapter(dir);
      float[][] again = reloaded.predict(ids, mask, types);
      for (int i = 0; i < trained.length; i++) {
        assertArrayEquals(trained[i], again[i], 0f, "row " + i + " bit-identical after reload");
      }
    }
  }

  private static float maxAbs(float[] v) {
    float m = 0;
    for (float x : v) {
      m = Math.max(m, Math.abs(x));
    }
    return m;
  }
}
