package dev.graft.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.feed.PastKeyValues;
import dev.graft.spec.manifest.KeyValueCache;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Generation on the torch-exported GPT-2 fixtures: {@code gpt2_past_opset14} has past key/value
 * inputs and present outputs, {@code gpt2_opset14} has none (each step re-runs the prefix).
 */
class GenerationTest {
  private static final long[][] PROMPTS = {{3, 17, 22, 8}, {4, 11, 60, 2}, {9, 9, 1, 40}};
  private static CompiledGraft past;
  private static CompiledGraft plain;

  @BeforeAll
  static void compile() throws Exception {
    past = lora("gpt2_past_opset14");
    plain = lora("gpt2_opset14");
  }

  private static CompiledGraft lora(String host) throws Exception {
    Path model = Path.of(GenerationTest.class.getResource("/hosts/torch/" + host + ".onnx").toURI());
    return Graft.host(model).lora(".*/(attn/c_attn|mlp/c_fc)/Gemm", l -> l.rank(4).alpha(8))
        .causalLm(o -> o.output("logits")).compile();
  }

  /** A model whose LoRA B matrices are non-zero (seeded), so that the adapter changes the logits. */
  private static AdapterModel open(CompiledGraft graft, double scale) {
    AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(5));
    SplittableRandom random = new SplittableRandom(21);
    for (Parameter p : model.getParameters()) {
      if (p.getName().endsWith("lora_B")) {
        float[] v = model.getParameter(p.getName());
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) (scale * (random.nextDouble() * 2 - 1));
        }
        model.setParameter(p.getName(), v);
      }
    }
    return model;
  }

  @Test
  void theCompilerKeepsTheCacheAndRecordsIt() {
    var m = past.manifest();
    assertEquals(List.of("input_ids", "attention_mask"), m.getInputsList().stream().map(i -> i.getName()).toList());
    assertEquals(List.of("past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key",
        "past_key_values.1.value"), m.getKeyValuesList().stream().map(KeyValueCache::getPastInput).toList());
    KeyValueCache first = m.getKeyValues(0);
    assertEquals("present.0.key", first.getPresentOutput());
    assertEquals(2, first.getSequenceAxis());
    assertEquals(4, first.getShape(1).getSize());
    assertEquals(8, first.getShape(3).getSize());
    assertEquals(32, m.getInputs(0).getMaxSequence());
    assertEquals(List.of("logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"),
        past.inference().getGraph().getOutputList().stream().map(o -> o.getName()).toList());
    assertEquals(0, plain.manifest().getKeyValuesCount());
    assertEquals(16, plain.manifest().getInputs(0).getMaxSequence());
  }

  @Test
  void withPastKeyValuesTheTokensAreThoseOfRerunningThePrefix() {
    try (AdapterModel model = open(past, 0.5); AdapterModel host = open(past, 0)) {
      GenerationOptions greedy = GenerationOptions.greedy();
      long[][] cached = model.generate(PROMPTS, 12, greedy);
      long[][] rerun = model.generate(PROMPTS, 12, greedy.withPastKeyValues(false));
      assertArrayEquals(rerun, cached);
      assertEquals(12, cached[0].length);
      // The adapter is active: the host alone generates other tokens.
      assertFalse(java.util.Arrays.deepEquals(cached, host.generate(PROMPTS, 12, greedy)));
      // And re-running the prefix is predictSequence's arg max, step by step.
      assertArrayEquals(manualGreedy(model, PROMPTS, 12), rerun);

      GenerationOptions sampling = GenerationOptions.sampling(42).withTemperature(1.5).withTopK(20).withTopP(0.95);
      long[][] sampled = model.generate(PROMPTS, 12, sampling);
      assertArrayEquals(model.generate(PROMPTS, 12, sampling.withPastKeyValues(false)), sampled);
      assertArrayEquals(sampled, model.generate(PROMPTS, 12, sampling));
      assertFalse(java.util.Arrays.deepEquals(sampled, model.generate(PROMPTS, 12, sampling.withSeed(43))));
      assertFalse(java.util.Arrays.deepEquals(sampled, cached));
    }
  }

  /** Greedy decoding by hand: the whole prefix through predictSequence, the last position's arg max. */
  private static long[][] manualGreedy(AdapterModel model, long[][] prompts, int n) {
    List<List<Long>> seqs = new ArrayList<>();
    for (long[] p : prompts) {
      List<Long> s = new ArrayList<>();
      for (long t : p) {
        s.add(t);
      }
      seqs.add(s);
    }
    long[][] out = new long[prompts.length][n];
    for (int step = 0; step < n; step++) {
      int len = seqs.get(0).size();
      long[][] ids = new long[prompts.length][len];
      long[][] mask = new long[prompts.length][len];
      for (int r = 0; r < ids.length; r++) {
        for (int c = 0; c < len; c++) {
          ids[r][c] = seqs.get(r).get(c);
          mask[r][c] = 1;
        }
      }
      Map<String, long[][]> in = new LinkedHashMap<>();
      in.put("input_ids", ids);
      in.put("attention_mask", mask);
      float[][][] logits = model.predictSequence(in);
      for (int r = 0; r < ids.length; r++) {
        float[] last = logits[r][len - 1];
        int best = 0;
        for (int i = 1; i < last.length; i++) {
          if (last[i] > last[best]) {
            best = i;
          }
        }
        out[r][step] = best;
        seqs.get(r).add((long) best);
      }
    }
    return out;
  }

  @Test
  void aHostWithoutACacheReRunsThePrefix() {
    try (AdapterModel model = open(plain, 0.5)) {
      long[][] tokens = model.generate(PROMPTS, 8, GenerationOptions.greedy());
      assertArrayEquals(manualGreedy(model, PROMPTS, 8), tokens);
      GenerationOptions sampling = GenerationOptions.sampling(3).withTopP(0.8);
      assertArrayEquals(model.generate(PROMPTS, 8, sampling), model.generate(PROMPTS, 8, sampling));
    }
  }

  /**
   * Cached decoding against PyTorch: {@code export_hosts.py} ran greedy decoding with past
   * key/values on the same weights in float64 ({@code gpt2_past_opset14.generation.json}: 3
   * prompts, 8 steps); Graft's cached steps (float32, the LoRA at zero) give every step's
   * last-position logits within 1e-4 and the same tokens.
   */
  @Test
  void cachedDecodingMatchesPyTorchWithPastKeyValues() throws Exception {
    Path file = Path.of(GenerationTest.class.getResource("/hosts/torch/gpt2_past_opset14.generation.json").toURI());
    JsonObject ref = JsonParser.parseString(java.nio.file.Files.readString(file)).getAsJsonObject();
    long[][] prompts = rows(ref.getAsJsonArray("prompts"));
    long[][] tokens = rows(ref.getAsJsonArray("tokens"));
    int steps = ref.get("steps").getAsInt();
    JsonArray logits = ref.getAsJsonArray("logits");
    List<float[][]> seen = new ArrayList<>();
    List<Integer> lengths = new ArrayList<>();
    long[][] got;
    try (AdapterModel host = open(past, 0)) {
      got = host.generate(prompts, steps, GenerationOptions.greedy(), (length, l) -> {
        lengths.add(length);
        seen.add(l);
      });
    }
    assertEquals(steps, seen.size());
    assertEquals(prompts[0].length, lengths.get(0));
    double worst = 0;
    double largest = 0;
    for (int step = 0; step < steps; step++) {
      JsonArray expected = logits.get(step).getAsJsonArray();
      float[][] actual = seen.get(step);
      int vocab = actual[0].length;
      assertEquals(expected.size(), prompts.length * vocab);
      for (int r = 0; r < prompts.length; r++) {
        for (int v = 0; v < vocab; v++) {
          double e = expected.get(r * vocab + v).getAsDouble();
          worst = Math.max(worst, Math.abs(actual[r][v] - e));
          largest = Math.max(largest, Math.abs(e));
        }
      }
    }
    System.out.printf("cached decoding vs PyTorch (float64, past key/values), %d steps: max |logit difference| %.3g"
        + " (largest |logit| %.3g)%n", steps, worst, largest);
    assertTrue(worst <= 1e-4, "max |logit difference| " + worst);
    assertArrayEquals(tokens, got);
  }

  private static long[][] rows(JsonArray a) {
    long[][] out = new long[a.size()][];
    for (int i = 0; i < out.length; i++) {
      JsonArray row = a.get(i).getAsJsonArray();
      out[i] = new long[row.size()];
      for (int j = 0; j < row.size(); j++) {
        out[i][j] = row.get(j).getAsLong();
      }
    }
    return out;
  }

  /** Prompts of 6, 2 and 4 tokens: the second reaches its own tokens while the first still reads its prompt. */
  private static final long[][] RAGGED = {{3, 17, 22, 8, 5, 6}, {4, 11}, {9, 9, 1, 40}};

  /**
   * A ragged batch: each prompt's new tokens equal that prompt's generated alone, greedy and
   * sampled (row r alone with seed + r), with the cache and re-running the prefix, and on the host
   * without a cache.
   */
  @Test
  void eachPromptOfARaggedBatchGetsTheTokensItGetsAlone() {
    try (AdapterModel model = open(past, 0.5); AdapterModel noCache = open(plain, 0.5)) {
      GenerationOptions sampling = GenerationOptions.sampling(42).withTemperature(1.5).withTopK(20).withTopP(0.95);
      for (GenerationOptions options : List.of(GenerationOptions.greedy(), sampling)) {
        long[][] cached = model.generate(RAGGED, 9, options);
        assertArrayEquals(cached, model.generate(RAGGED, 9, options.withPastKeyValues(false)), options.toString());
        long[][] rerun = noCache.generate(RAGGED, 9, options);
        for (int r = 0; r < RAGGED.length; r++) {
          GenerationOptions alone = options.withSeed(options.seed() + r);
          assertEquals(9, cached[r].length);
          assertArrayEquals(model.generate(new long[][] {RAGGED[r]}, 9, alone)[0], cached[r], "row " + r + ", " + options);
          assertArrayEquals(model.generate(new long[][] {RAGGED[r]}, 9, alone.withPastKeyValues(false))[0], cached[r],
              "row " + r + " re-running the prefix, " + options);
          assertArrayEquals(noCache.generate(new long[][] {RAGGED[r]}, 9, alone)[0], rerun[r],
              "row " + r + " without a cache, " + options);
        }
      }
      // Greedy re-running of the prefix is predictSequence's arg max step by step, for each prompt alone.
      long[][] greedy = noCache.generate(RAGGED, 5, GenerationOptions.greedy());
      for (int r = 0; r < RAGGED.length; r++) {
        assertArrayEquals(manualGreedy(noCache, new long[][] {RAGGED[r]}, 5)[0], greedy[r], "row " + r);
      }
      // Rows sample from their own streams: the same prompt twice gets two different samples.
      long[][] twice = model.generate(new long[][] {RAGGED[1], RAGGED[1]}, 9, sampling);
      assertFalse(java.util.Arrays.equals(twice[0], twice[1]));
    }
  }

  @Test
  void theLongestPromptOfARaggedBatchMeetsTheLimit() {
    try (AdapterModel model = open(past, 0)) {
      long[][] prompts = {new long[2], new long[29]};
      GraftException e = assertThrows(GraftException.class, () -> model.generate(prompts, 4, GenerationOptions.greedy()));
      assertEquals(RuntimeErrorCode.SEQUENCE_LIMIT, e.getErrorCode());
      assertTrue(e.getMessage().contains("longest prompt length 29 + maxNewTokens 4 = 33 tokens exceeds the limit of 32"
          + " (the host's positions)"), e.getMessage());
      long[][] empty = {new long[2], new long[0]};
      TensorMismatchException t = assertThrows(TensorMismatchException.class,
          () -> model.generate(empty, 4, GenerationOptions.greedy()));
      assertTrue(t.getMessage().contains("row 1 is empty"), t.getMessage());
    }
  }

  @Test
  void aRowEndsAtAStopToken() {
    try (AdapterModel model = open(past, 0.5)) {
      long[][] full = model.generate(PROMPTS, 10, GenerationOptions.greedy());
      long stop = full[0][2];
      int firstStop = 0;
      while (full[0][firstStop] != stop) {
        firstStop++;
      }
      long[][] stopped = model.generate(PROMPTS, 10, GenerationOptions.greedy().withStopTokens(stop));
      assertEquals(firstStop + 1, stopped[0].length);
      assertEquals(stop, stopped[0][firstStop]);
      for (int r = 0; r < PROMPTS.length; r++) {
        for (int i = 0; i < stopped[r].length; i++) {
          assertEquals(full[r][i], stopped[r][i]);
        }
      }
    }
  }

  @Test
  void trainingFeedsAnEmptyCache() {
    try (AdapterModel model = open(past, 0)) {
      Map<String, long[][]> in = new LinkedHashMap<>();
      long[][] mask = new long[PROMPTS.length][PROMPTS[0].length];
      for (long[] row : mask) {
        java.util.Arrays.fill(row, 1);
      }
      in.put("input_ids", PROMPTS);
      in.put("attention_mask", mask);
      float first = model.trainStep(in, 0.05f);
      float last = first;
      for (int i = 0; i < 20; i++) {
        last = model.trainStep(in, 0.05f);
      }
      assertTrue(last < first - 0.1, first + " -> " + last);
      assertEquals(PROMPTS[0].length, model.predictSequence(in)[0].length);
    }
  }

  @Test
  void theTotalLengthIsBoundedByTheHostsPositions() {
    try (AdapterModel model = open(past, 0); AdapterModel noCache = open(plain, 0)) {
      long[][] prompt = new long[1][30];
      GraftException e = assertThrows(GraftException.class, () -> model.generate(prompt, 3, GenerationOptions.greedy()));
      assertEquals(RuntimeErrorCode.SEQUENCE_LIMIT, e.getErrorCode());
      assertTrue(e.getMessage().contains("[GRAFT-R100]") && e.getMessage().contains("33 tokens exceeds the limit of 32"),
          e.getMessage());
      assertEquals(2, model.generate(prompt, 2, GenerationOptions.greedy())[0].length);
      GraftException own = assertThrows(GraftException.class,
          () -> model.generate(PROMPTS, 3, GenerationOptions.greedy().withMaxLength(6)));
      assertTrue(own.getMessage().contains("limit of 6 (GenerationOptions.maxLength)"), own.getMessage());
      GraftException host = assertThrows(GraftException.class,
          () -> noCache.generate(PROMPTS, 13, GenerationOptions.greedy()));
      assertTrue(host.getMessage().contains("17 tokens exceeds the limit of 16"), host.getMessage());
    }
  }

  @Test
  void badArgumentsNameTheValue() {
    GraftException t = assertThrows(GraftException.class, () -> GenerationOptions.sampling(1).withTemperature(0));
    assertEquals(RuntimeErrorCode.ARGUMENT, t.getErrorCode());
    assertTrue(t.getMessage().contains("got 0.0"), t.getMessage());
    assertTrue(assertThrows(GraftException.class, () -> GenerationOptions.greedy().withTopP(1.5))
        .getMessage().contains("got 1.5"));
    assertTrue(assertThrows(GraftException.class, () -> GenerationOptions.greedy().withTopK(-1))
        .getMessage().contains("got -1"));
    try (AdapterModel model = open(past, 0)) {
      TensorMismatchException none1 = assertThrows(TensorMismatchException.class,
          () -> model.generate(new long[0][], 2, GenerationOptions.greedy()));
      assertTrue(none1.getMessage().contains("no prompt"), none1.getMessage());
      GraftException none = assertThrows(GraftException.class,
          () -> model.generate(PROMPTS, 0, GenerationOptions.greedy()));
      assertTrue(none.getMessage().contains("maxNewTokens must be >= 1, got 0"), none.getMessage());
    }
  }

  @Test
  void aCacheEntryWithItsPastAxisOutsideItsShapeIsRefused() {
    KeyValueCache entry = past.manifest().getKeyValues(0).toBuilder().setSequenceAxis(4).build();
    FormatException e = assertThrows(FormatException.class, () -> PastKeyValues.shape(entry, 2, 0));
    assertTrue(e.getMessage().contains("'past_key_values.0.key': sequence_axis must be in [1, 4)")
        && e.getMessage().contains("got 4"), e.getMessage());
    assertArrayEquals(new long[] {2, 4, 0, 8}, PastKeyValues.shape(past.manifest().getKeyValues(0), 2, 0));
  }

  @Test
  void samplingCutsToTopKAndTopP() {
    float[] logits = {3, 2, 1, 0};
    GenerationOptions s = GenerationOptions.sampling(0);
    for (double u : new double[] {0, 0.5, 0.999}) {
      assertEquals(0, Generation.pick(logits, s.withTopK(1), u));
      // p(0) = e^3 / (e^3 + e^2 + e + 1) = 0.644 reaches top-p 0.6 alone.
      assertEquals(0, Generation.pick(logits, s.withTopP(0.6), u));
    }
    // Top-2: p = (0.731, 0.269); u = 0.9 falls in token 1.
    assertEquals(1, Generation.pick(logits, s.withTopK(2), 0.9));
    assertEquals(0, Generation.pick(logits, s.withTopK(2), 0.7));
    // All four: u = 0.99 reaches token 3 (cumulative 0.644, 0.881, 0.968, 1).
    assertEquals(3, Generation.pick(logits, s, 0.99));
    // A high temperature flattens: at T = 100, u = 0.3 is in token 1 (each near 0.25).
    assertEquals(1, Generation.pick(logits, s.withTemperature(100), 0.3));
    assertEquals(0, Generation.pick(logits, GenerationOptions.greedy(), 0.99));
    assertNotEquals(Generation.pick(logits, s, 0.1), Generation.pick(logits, s, 0.95));
  }
}
