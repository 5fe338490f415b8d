package dev.graft.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Causal-LM LoRA on real text: the Amazon sentences of the UCI Sentiment Labelled Sentences (CC BY
 * 4.0, Kotzias et al. 2015, from the npm package {@code sentiment@5.0.2}; see
 * {@code text/sentiment/README.md}), byte-level tokens (256 = end of text) for the random-weight
 * byte decoder {@code gpt2_bytes_opset14}. The held-out perplexity falls below the host's.
 */
class CausalLmTextTest {
  static final int EOT = 256;
  static final int LENGTH = 48;
  static final int BATCH = 16;

  /** Each sentence as EOT then its UTF-8 bytes (cut to LENGTH - 1), padded with EOT (mask 0). */
  static List<long[]> sentences() throws IOException {
    List<long[]> out = new ArrayList<>();
    try (InputStream in = CausalLmTextTest.class.getResourceAsStream("/text/sentiment/amazon.tsv")) {
      for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
        byte[] text = line.substring(line.indexOf('\t') + 1).getBytes(StandardCharsets.UTF_8);
        long[] ids = new long[Math.min(text.length, LENGTH - 1) + 1];
        ids[0] = EOT;
        for (int i = 1; i < ids.length; i++) {
          ids[i] = text[i - 1] & 0xFF;
        }
        out.add(ids);
      }
    }
    Collections.shuffle(out, new Random(7));
    return out;
  }

  static Map<String, long[][]> batch(List<long[]> rows) {
    long[][] ids = new long[rows.size()][LENGTH];
    long[][] mask = new long[rows.size()][LENGTH];
    for (int r = 0; r < ids.length; r++) {
      long[] s = rows.get(r);
      for (int c = 0; c < LENGTH; c++) {
        ids[r][c] = c < s.length ? s[c] : EOT;
        mask[r][c] = c < s.length ? 1 : 0;
      }
    }
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", ids);
    m.put("attention_mask", mask);
    return m;
  }

  /** exp of the mean next-token negative log-likelihood over the real (unpadded) tokens, in double. */
  static double perplexity(AdapterModel model, List<long[]> rows) {
    double nll = 0;
    long count = 0;
    for (int start = 0; start < rows.size(); start += 50) {
      Map<String, long[][]> b = batch(rows.subList(start, Math.min(rows.size(), start + 50)));
      float[][][] logits = model.predictSequence(b);
      long[][] ids = b.get("input_ids");
      long[][] mask = b.get("attention_mask");
      for (int r = 0; r < ids.length; r++) {
        for (int t = 0; t + 1 < LENGTH && mask[r][t + 1] == 1; t++) {
          float[] z = logits[r][t];
          double max = Double.NEGATIVE_INFINITY;
          for (float v : z) {
            max = Math.max(max, v);
          }
          double sum = 0;
          for (float v : z) {
            sum += Math.exp(v - max);
          }
          nll += max + Math.log(sum) - z[(int) ids[r][t + 1]];
          count++;
        }
      }
    }
    return Math.exp(nll / count);
  }

  @Test
  void loraOnSentencesLowersHeldOutPerplexityBelowTheHosts() throws Exception {
    List<long[]> all = sentences();
    assertEquals(1000, all.size());
    List<long[]> train = all.subList(0, 900);
    List<long[]> heldOut = all.subList(900, 1000);
    Path host = Path.of(getClass().getResource("/hosts/torch/gpt2_bytes_opset14.onnx").toURI());
    CompiledGraft graft = Graft.host(host)
        .lora(".*/(attn/c_attn|attn/c_proj|mlp/c_fc|mlp/c_proj)/Gemm", l -> l.rank(8).alpha(16))
        .causalLm(o -> o.output("logits")).compile();
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(1))) {
      double before = perplexity(model, heldOut);
      int steps = 0;
      for (int epoch = 0; epoch < 2; epoch++) {
        for (int start = 0; start + BATCH <= train.size(); start += BATCH) {
          model.trainStep(batch(train.subList(start, start + BATCH)), 0.01f);
          steps++;
        }
      }
      double after = perplexity(model, heldOut);
      System.out.printf(Locale.ROOT, "byte decoder on %d sentences, %d steps: held-out perplexity host %.2f, LoRA %.2f%n",
          train.size(), steps, before, after);
      // Random weights: far worse than uniform over the 257 tokens; the LoRA learns English bytes.
      assertTrue(before > 257 && after < 100, "held-out perplexity " + before + " -> " + after);
      long[][] prompt = {{EOT, 'T', 'h', 'i', 's'}};
      long[][] tokens = model.generate(prompt, 20, GenerationOptions.sampling(3).withTopK(10).withStopTokens(EOT));
      assertTrue(tokens[0].length >= 1 && tokens[0].length <= 20);
    }
  }
}
