package dev.graft.examples.sentiment;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.data.LabelledText;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.text.TextTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The class javac generated from {@link SentimentGatedLora}, whose adapter kind comes from
 * another jar: it trains on the real all-MiniLM-L6-v2 host, its gates move, and it saves and
 * reloads to the same predictions.
 */
class SentimentGatedLoraGraftTest {
  static Batch batch;

  @TempDir Path dir;

  @BeforeAll
  static void tokenize() {
    List<LabelledText> texts =
        LabelledText.readTsv(SentimentGatedLoraGraftTest.class.getClassLoader(), SentimentData.DATA + "yelp.tsv");
    try (TextTokenizer tokenizer = TextTokenizer.fromClasspath(SentimentData.TOKENIZER, 32)) {
      // 8 negative and 8 positive sentences: the file lists 500 of each.
      List<LabelledText> picked = new ArrayList<>(texts.subList(0, 8));
      picked.addAll(texts.subList(texts.size() - 8, texts.size()));
      List<Example> examples = SentimentData.examples(tokenizer, picked);
      batch = Batch.of(examples, SentimentGatedLoraGraft.INPUT_NAMES);
    }
  }

  @Test
  void trainsWithTheCustomKindSavesAndReloads() {
    long[][] ids = batch.inputs().get("input_ids");
    long[][] mask = batch.inputs().get("attention_mask");
    long[][] types = batch.inputs().get("token_type_ids");
    float[][] trained;
    try (SentimentGatedLoraGraft graft = SentimentGatedLoraGraft.load(ModelOptions.defaults().withSeed(3))) {
      // 6 layers × (query, value) × (A [384, 8] + B [8, 384] + gate [384]) + head (384 × 2 + 2).
      assertEquals(12 * (2 * 384 * 8 + 384) + 384 * 2 + 2, graft.model().getParameterCount());
      String site = "encoder.layer.0.attention.self.query.gated_lora.";
      assertArrayEquals(new float[384], graft.model().getParameter(site + "gate"), "gates start at 0: half open");
      float first = graft.trainStep(ids, mask, types, batch.labels(), 2e-3f);
      float last = first;
      for (int i = 0; i < 14; i++) {
        last = graft.trainStep(ids, mask, types, batch.labels(), 2e-3f);
      }
      System.out.printf("gated LoRA on MiniLM: loss %.4f -> %.4f in 15 steps%n", first, last);
      assertTrue(first > 0.5 && first < 0.9, "initial loss near ln 2: " + first);
      assertTrue(last < first / 2, "loss on one repeated batch falls by half: " + first + " -> " + last);
      assertTrue(maxAbs(graft.model().getParameter(site + "gate")) > 0, "the gates have moved");
      assertTrue(maxAbs(graft.model().getParameter(site + "B")) > 0, "B starts at zero and must have moved");
      trained = graft.predict(ids, mask, types);
      graft.model().saveAdapter(dir);
    }
    Map<String, TensorData> saved = Safetensors.read(dir.resolve(PeftAdapters.WEIGHTS_FILE)).tensors();
    String key = "base_model.model.encoder.layer.0.attention.self.query.";
    assertArrayEquals(new long[] {8, 384}, saved.get(key + "lora_A.weight").shape(), "PEFT's [r, in]");
    assertArrayEquals(new long[] {384, 8}, saved.get(key + "lora_B.weight").shape(), "PEFT's [out, r]");
    assertArrayEquals(new long[] {384}, saved.get(key + "gated_lora.gate").shape());
    assertEquals(12 * 3 + 2, saved.size(), "keys: " + saved.keySet());
    try (SentimentGatedLoraGraft reloaded =
        SentimentGatedLoraGraft.load(ModelOptions.defaults().withSeed(99).withTraining(false))) {
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
