package dev.graft.compiler;

import dev.graft.testing.TinyDecoderHost;
import dev.graft.testing.TinyGpt2Host;
import dev.graft.testing.TinyLlamaHost;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.Tensors;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.List;
import java.util.Map;
import java.util.function.LongFunction;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The tiny decoder hosts as ONNX models in ONNX Runtime: output order and shapes, LM logits
 * consistent with the hidden state (tied for GPT-2), the final norm's statistics, causal
 * attention (a later token never changes an earlier position) and padding (a masked key never
 * changes another position).
 */
class DecoderHostsTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  static final long SEED = 2025;

  enum Host {
    GPT2(TinyGpt2Host::graph, "transformer.ln_f"),
    LLAMA(TinyLlamaHost::graph, "model.norm");

    final LongFunction<Graph> graph;
    final String finalNorm;

    Host(LongFunction<Graph> graph, String finalNorm) {
      this.graph = graph;
      this.finalNorm = finalNorm;
    }
  }

  /** last_hidden_state and lm_logits of the host for ids/mask of shape [batch, sequence]. */
  private static float[][] run(OrtSession s, long[] ids, long[] mask, long batch) throws OrtException {
    long[] shape = {batch, ids.length / batch};
    try (OnnxTensor i = OnnxTensor.createTensor(ENV, LongBuffer.wrap(ids), shape);
        OnnxTensor m = OnnxTensor.createTensor(ENV, LongBuffer.wrap(mask), shape);
        OrtSession.Result r = s.run(Map.of("input_ids", i, "attention_mask", m))) {
      float[][] out = new float[2][];
      for (int k = 0; k < 2; k++) {
        OnnxTensor t = (OnnxTensor) r.get(k);
        assertArrayEquals(new long[] {shape[0], shape[1], k == 0 ? TinyDecoderHost.HIDDEN : TinyDecoderHost.VOCAB},
            t.getInfo().getShape(), r.get(k).toString());
        FloatBuffer b = t.getFloatBuffer();
        out[k] = new float[b.remaining()];
        b.get(out[k]);
      }
      return out;
    }
  }

  private static OrtSession session(Graph g) throws OrtException {
    return ENV.createSession(OnnxExport.write(g, "host").toByteArray(), new OrtSession.SessionOptions());
  }

  @ParameterizedTest
  @EnumSource(Host.class)
  void runsInOnnxRuntimeWithHiddenStateFirstAndConsistentLmLogits(Host host) throws OrtException {
    Graph g = host.graph.apply(SEED);
    assertEquals(List.of(TinyDecoderHost.HIDDEN_OUTPUT, TinyDecoderHost.LM_OUTPUT), g.outputs());
    try (OrtSession s = session(g)) {
      assertEquals(List.of("input_ids", "attention_mask"), List.copyOf(s.getInputNames()));
      NodeInfo hidden = s.getOutputInfo().get(TinyDecoderHost.HIDDEN_OUTPUT);
      long[] declared = ((TensorInfo) hidden.getInfo()).getShape();
      assertArrayEquals(new long[] {-1, -1, TinyDecoderHost.HIDDEN}, declared, "symbolic batch and sequence");
      long[] ids = {3, 17, 22, 8, 1, 5, 9, 30, 4, 11, 7, 0};
      long[] mask = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
      float[][] out = run(s, ids, mask, 2);
      float[] h = out[0];
      float[] logits = out[1];
      // LM logits = hidden · W: W = wteᵀ for GPT-2 (tied), the lm_head weight for Llama.
      double[] w = host == Host.GPT2
          ? transpose(Tensors.readDoubles(g.initializers().get("transformer.wte.weight")), TinyDecoderHost.VOCAB, TinyDecoderHost.HIDDEN)
          : Tensors.readDoubles(g.initializers().get(TinyLlamaHost.LM_HEAD_WEIGHT));
      double maxErr = 0;
      for (int row = 0; row < ids.length; row++) {
        for (int v = 0; v < TinyDecoderHost.VOCAB; v++) {
          double expected = 0;
          for (int k = 0; k < TinyDecoderHost.HIDDEN; k++) {
            expected += h[row * TinyDecoderHost.HIDDEN + k] * w[k * TinyDecoderHost.VOCAB + v];
          }
          maxErr = Math.max(maxErr, Math.abs(expected - logits[row * TinyDecoderHost.VOCAB + v]));
        }
      }
      assertTrue(maxErr < 1e-4, "LM logits = hidden · W, max error " + maxErr);
      // The final norm: (h − bias)/weight has mean 0, variance 1 per row (LayerNorm, GPT-2) or
      // h/weight has mean square 1 (RMSNorm, Llama); tolerance 1e-3 (ε and float32 rounding).
      double[] nw = Tensors.readDoubles(g.initializers().get(host.finalNorm + ".weight"));
      double[] nb = host == Host.GPT2 ? Tensors.readDoubles(g.initializers().get(host.finalNorm + ".bias")) : new double[nw.length];
      for (int row = 0; row < ids.length; row++) {
        double sum = 0;
        double sq = 0;
        for (int k = 0; k < nw.length; k++) {
          double z = (h[row * nw.length + k] - nb[k]) / nw[k];
          sum += z;
          sq += z * z;
        }
        double mean = sum / nw.length;
        if (host == Host.GPT2) {
          assertEquals(0, mean, 1e-3, "row " + row + " mean");
          assertEquals(1, sq / nw.length - mean * mean, 1e-3, "row " + row + " variance");
        } else {
          assertEquals(1, sq / nw.length, 1e-3, "row " + row + " mean square");
        }
      }
    }
  }

  /**
   * Changing the token at position 4 leaves positions 0–3 bit-identical (the masked scores'
   * probabilities are exactly 0) and changes positions 4–7.
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void attentionIsCausal(Host host) throws OrtException {
    try (OrtSession s = session(host.graph.apply(SEED))) {
      long[] ids = {3, 17, 22, 8, 1, 5, 9, 30};
      long[] changed = ids.clone();
      changed[4] = 26;
      long[] mask = {1, 1, 1, 1, 1, 1, 1, 1};
      float[] a = run(s, ids, mask, 1)[0];
      float[] b = run(s, changed, mask, 1)[0];
      int d = TinyDecoderHost.HIDDEN;
      for (int pos = 0; pos < ids.length; pos++) {
        double diff = 0;
        for (int k = 0; k < d; k++) {
          diff = Math.max(diff, Math.abs(a[pos * d + k] - b[pos * d + k]));
        }
        if (pos < 4) {
          assertEquals(0, diff, 0, "position " + pos + " must not see position 4");
        } else {
          assertTrue(diff > 1e-3, "position " + pos + " sees position 4: " + diff);
        }
      }
    }
  }

  /**
   * With left padding (mask 0 at positions 0–1), changing a padded token changes no unpadded
   * position: the padded key gets probability exactly 0 in their softmax. (Padded queries see
   * every key masked and attend uniformly, future keys included, as in the exported models;
   * their hidden states are not compared.)
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void paddedKeysAreIgnored(Host host) throws OrtException {
    try (OrtSession s = session(host.graph.apply(SEED))) {
      long[] ids = {0, 0, 22, 8, 1, 5};
      long[] changed = {0, 13, 22, 8, 1, 5};
      long[] mask = {0, 0, 1, 1, 1, 1};
      float[] a = run(s, ids, mask, 1)[0];
      float[] b = run(s, changed, mask, 1)[0];
      int d = TinyDecoderHost.HIDDEN;
      double otherDiff = 0;
      double ownDiff = 0;
      for (int pos = 0; pos < ids.length; pos++) {
        for (int k = 0; k < d; k++) {
          double diff = Math.abs(a[pos * d + k] - b[pos * d + k]);
          if (pos == 1) {
            ownDiff = Math.max(ownDiff, diff);
          } else if (pos >= 2) {
            otherDiff = Math.max(otherDiff, diff);
          }
        }
      }
      assertEquals(0, otherDiff, 0, "no unpadded position sees the padded token");
      assertTrue(ownDiff > 1e-3, "the padded position itself changes: " + ownDiff);
    }
  }

  private static double[] transpose(double[] m, int rows, int cols) {
    double[] t = new double[m.length];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        t[c * rows + r] = m[r * cols + c];
      }
    }
    return t;
  }
}
