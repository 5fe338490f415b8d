package dev.graft.compiler.kinds;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.kinds.mixture.MixtureOfLoraKind;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import java.nio.DoubleBuffer;
import java.nio.LongBuffer;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The mixture router's top-k mask and load-balancing loss, run on ONNX Runtime on given logits,
 * against a plain-Java computation of Switch Transformers' formula {@code E · Σ_e f_e · P_e}.
 */
class RouterValuesTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int BATCH = 2;
  private static final int SEQUENCE = 4;
  private static final int EXPERTS = 5;
  private static final int K = 2;
  /** The second sequence has two padding tokens. */
  private static final long[] MASK = {1, 1, 1, 1, 1, 1, 0, 0};

  /** Runs the router pieces on {@code logits} [2, 4, 5]; returns {mask, gates, loss}. */
  private static double[][] run(double[] logits, boolean withMask) throws OrtException {
    Graph g = new Graph();
    g.addInput("logits", TensorType.of(TensorType.DOUBLE, BATCH, SEQUENCE, EXPERTS));
    // The site input x only gives the loss its [batch, sequence, in] rank.
    g.addInput("x", TensorType.of(TensorType.DOUBLE, BATCH, SEQUENCE, 3));
    if (withMask) {
      g.addInput("attention_mask", TensorType.of(TensorType.INT64, BATCH, SEQUENCE));
    }
    Placement placement = new Placement(g, GraphVariant.TRAIN, TensorType.DOUBLE);
    String probs = g.op("/Softmax", "Softmax", java.util.List.of("logits"), dev.graft.compiler.ir.Node.attr("axis", -1L));
    String kept = MixtureOfLoraKind.topK(placement, "/top_k", "logits", K);
    String loss = MixtureOfLoraKind.loadBalance(placement, "/load_balance", "x", probs, kept, EXPERTS);
    g.outputs().add(g.opTo("kept", "/kept", "Identity", java.util.List.of(kept)));
    g.outputs().add(g.opTo("loss", "/loss", "Identity", java.util.List.of(loss)));
    try (OrtSession s = ENV.createSession(OnnxExport.write(g, "router").toByteArray());
        OnnxTensor l = OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(logits), new long[] {BATCH, SEQUENCE, EXPERTS});
        OnnxTensor x = OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(new double[BATCH * SEQUENCE * 3]),
            new long[] {BATCH, SEQUENCE, 3});
        OnnxTensor m = OnnxTensor.createTensor(ENV, LongBuffer.wrap(MASK), new long[] {BATCH, SEQUENCE})) {
      Map<String, OnnxTensor> feeds = withMask ? Map.of("logits", l, "x", x, "attention_mask", m) : Map.of("logits", l, "x", x);
      try (OrtSession.Result r = s.run(feeds)) {
        return new double[][] {values((OnnxTensor) r.get("kept").orElseThrow()), values((OnnxTensor) r.get("loss").orElseThrow())};
      }
    }
  }

  private static double[] values(OnnxTensor t) {
    DoubleBuffer b = t.getDoubleBuffer();
    double[] out = new double[b.remaining()];
    b.get(out);
    return out;
  }

  /** The top-k mask by sorting each token's logits. */
  private static double[] expectedMask(double[] logits) {
    double[] mask = new double[logits.length];
    for (int t = 0; t < BATCH * SEQUENCE; t++) {
      Integer[] order = new Integer[EXPERTS];
      for (int e = 0; e < EXPERTS; e++) {
        order[e] = e;
      }
      final int token = t;
      java.util.Arrays.sort(order, (a, b) -> Double.compare(logits[token * EXPERTS + b], logits[token * EXPERTS + a]));
      for (int i = 0; i < K; i++) {
        mask[t * EXPERTS + order[i]] = 1;
      }
    }
    return mask;
  }

  /** {@code E · Σ_e f_e · P_e} over the tokens whose mask entry is 1. */
  private static double expectedLoss(double[] logits, long[] tokenMask) {
    double[] mask = expectedMask(logits);
    double[] f = new double[EXPERTS];
    double[] p = new double[EXPERTS];
    double tokens = 0;
    for (int t = 0; t < BATCH * SEQUENCE; t++) {
      if (tokenMask[t] == 0) {
        continue;
      }
      tokens++;
      double max = Double.NEGATIVE_INFINITY;
      for (int e = 0; e < EXPERTS; e++) {
        max = Math.max(max, logits[t * EXPERTS + e]);
      }
      double sum = 0;
      for (int e = 0; e < EXPERTS; e++) {
        sum += Math.exp(logits[t * EXPERTS + e] - max);
      }
      for (int e = 0; e < EXPERTS; e++) {
        p[e] += Math.exp(logits[t * EXPERTS + e] - max) / sum;
        f[e] += mask[t * EXPERTS + e];
      }
    }
    double loss = 0;
    for (int e = 0; e < EXPERTS; e++) {
      loss += (f[e] / tokens) * (p[e] / tokens);
    }
    return EXPERTS * loss;
  }

  private static double[] randomLogits(long seed) {
    Random r = new Random(seed);
    double[] v = new double[BATCH * SEQUENCE * EXPERTS];
    for (int i = 0; i < v.length; i++) {
      v[i] = 2 * r.nextGaussian();
    }
    return v;
  }

  @Test
  void topKMaskKeepsTheKLargestLogitsOfEachToken() throws OrtException {
    double[] logits = randomLogits(3);
    assertArrayEquals(expectedMask(logits), run(logits, true)[0], 0.0);
  }

  @Test
  void loadBalanceOverRealTokensEqualsTheFormula() throws OrtException {
    double[] logits = randomLogits(5);
    double expected = expectedLoss(logits, MASK);
    assertEquals(expected, run(logits, true)[1][0], 1e-14);
    // The padding tokens change it: the mask is really applied.
    double all = expectedLoss(logits, new long[] {1, 1, 1, 1, 1, 1, 1, 1});
    assertEquals(all, run(logits, false)[1][0], 1e-14);
    org.junit.jupiter.api.Assertions.assertTrue(Math.abs(all - expected) > 1e-3, all + " vs " + expected);
  }

  @Test
  void uniformProbabilitiesGiveK() throws OrtException {
    // Logits that differ by at most 4e-9 keep k experts per token and make P_e = 1/E (to 1e-9), so
    // E · Σ_e f_e · P_e = Σ_e f_e = k: the value of a perfectly balanced router.
    double[] logits = new double[BATCH * SEQUENCE * EXPERTS];
    for (int t = 0; t < BATCH * SEQUENCE; t++) {
      for (int e = 0; e < EXPERTS; e++) {
        logits[t * EXPERTS + e] = 1e-9 * ((e + t) % EXPERTS);
      }
    }
    double loss = run(logits, false)[1][0];
    assertEquals(expectedLoss(logits, new long[] {1, 1, 1, 1, 1, 1, 1, 1}), loss, 1e-12);
    assertEquals(K, loss, 0.1, "balanced routing gives about k");
  }
}
