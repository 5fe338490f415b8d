package dev.graft.compiler;

import dev.graft.testing.TinyBertHost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import java.nio.DoubleBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The forward values of prompt and prefix tuning on the float64 tiny BERT, against computations
 * that do not use them: prompt tuning whose virtual tokens are the word embeddings of real tokens
 * gives the host's own output on those tokens prepended; prefix tuning gives what a plain Java
 * forward pass of the same BERT with the rows prepended to each layer's keys and values gives.
 */
class VirtualTokenValuesTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int BATCH = 2;
  private static final int SEQ = 5;
  private static final long[] IDS = {3, 7, 12, 8, 1, 5, 9, 13, 0, 0};
  private static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  private static final long[] TYPES = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  private static final int H = TinyBertHost.HIDDEN;

  @Test
  void promptTuningWithWordEmbeddingsOfTokensIsTheHostOnThoseTokensPrepended() throws OrtException {
    long[] virtual = {4, 11, 2};
    int n = virtual.length;
    Graph host = TinyBertHost.graph(5, TensorType.DOUBLE);
    double[] table = Tensors.readDoubles(host.initializers().get("embeddings.word_embeddings.weight"));
    double[] prompt = new double[n * H];
    for (int i = 0; i < n; i++) {
      System.arraycopy(table, (int) virtual[i] * H, prompt, i * H, H);
    }
    Graph placed = placed(TinyBertHost.graph(5, TensorType.DOUBLE), "prompt_tuning", Map.of("tokens", n, "init", "random"));
    double[] got = run(placed, IDS, MASK, TYPES, SEQ, Map.of("embeddings.word_embeddings.prompt_embeddings", prompt),
        new long[] {n, H});

    int wide = n + SEQ;
    long[] ids = new long[BATCH * wide];
    long[] mask = new long[BATCH * wide];
    long[] types = new long[BATCH * wide];
    for (int b = 0; b < BATCH; b++) {
      for (int t = 0; t < wide; t++) {
        ids[b * wide + t] = t < n ? virtual[t] : IDS[b * SEQ + t - n];
        mask[b * wide + t] = t < n ? 1 : MASK[b * SEQ + t - n];
        types[b * wide + t] = t < n ? 0 : TYPES[b * SEQ + t - n];
      }
    }
    double[] full = run(host, ids, mask, types, wide, Map.of(), null);
    assertEquals(BATCH * SEQ * H, got.length);
    double worst = 0;
    for (int b = 0; b < BATCH; b++) {
      for (int t = 0; t < SEQ; t++) {
        for (int k = 0; k < H; k++) {
          worst = Math.max(worst, Math.abs(got[(b * SEQ + t) * H + k] - full[(b * wide + n + t) * H + k]));
        }
      }
    }
    assertTrue(worst < 1e-12, "largest difference " + worst);
  }

  @Test
  void prefixTuningMatchesAPlainForwardPassWithRowsPrependedToKeysAndValues() throws OrtException {
    int n = 3;
    Random r = new Random(17);
    double[] table = new double[n * TinyBertHost.LAYERS * 2 * H];
    for (int i = 0; i < table.length; i++) {
      table[i] = r.nextGaussian();
    }
    Graph host = TinyBertHost.graph(5, TensorType.DOUBLE);
    Graph placed = placed(TinyBertHost.graph(5, TensorType.DOUBLE), "prefix_tuning", Map.of("tokens", n));
    double[] got = run(placed, IDS, MASK, TYPES, SEQ, Map.of("prefix_tuning.prompt_embeddings", table),
        new long[] {n, TinyBertHost.LAYERS * 2L * H});
    double[] expected = new Bert(host).forward(IDS, MASK, TYPES, table, n);
    // The reference agrees with the host itself (no prefix) to about 1e-8: ONNX Runtime's own
    // float64 kernels (unoptimized session) and Java's sum in different orders.
    double[] hostOut = run(host, IDS, MASK, TYPES, SEQ, Map.of(), null);
    double[] plain = new Bert(host).forward(IDS, MASK, TYPES, new double[0], 0);
    double agree = 0;
    for (int i = 0; i < plain.length; i++) {
      agree = Math.max(agree, Math.abs(plain[i] - hostOut[i]));
    }
    assertTrue(agree < 1e-7, "reference against the host: " + agree);
    double worst = 0;
    for (int i = 0; i < expected.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - expected[i]));
    }
    assertEquals(expected.length, got.length);
    assertTrue(worst < 1e-7, "largest difference " + worst);
    // The prefix matters: without it the output differs.
    double moved = 0;
    for (int i = 0; i < plain.length; i++) {
      moved = Math.max(moved, Math.abs(plain[i] - expected[i]));
    }
    assertTrue(moved > 1e-2, "the prefix changes the output by " + moved);
  }

  /** {@code graph} with one declaration of {@code kind} placed (inference form), shape-inferred. */
  static Graph placed(Graph graph, String kind, Map<String, Object> options) {
    AdapterKind k = AdapterKinds.byId(kind).orElseThrow();
    Map<String, Object> all = new HashMap<>(options);
    k.options().forEach(o -> all.putIfAbsent(o.name(), o.defaultValue()));
    List<? extends Site> sites = k.candidates(graph);
    Placement placement = new Placement(graph, GraphVariant.INFERENCE, TensorType.DOUBLE);
    placement.declaration(0);
    k.place(new AdapterSpec(kind, "", List.of(), all, null), sites, placement);
    ShapeInference.run(graph);
    return graph;
  }

  /**
   * Runs {@code graph} (weights inside) on one batch in an unoptimized session (ONNX Runtime's
   * fusions, e.g. of the decomposed LayerNorm, move float64 results by about 1e-5); returns its
   * first output.
   */
  static double[] run(Graph graph, long[] ids, long[] mask, long[] types, int seq, Map<String, double[]> params,
      long[] paramShape) throws OrtException {
    OrtSession.SessionOptions options = new OrtSession.SessionOptions();
    options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
    try (OrtSession s = ENV.createSession(OnnxExport.write(graph, "t").toByteArray(), options)) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      long[] shape = {BATCH, seq};
      feeds.put("input_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(ids), shape));
      feeds.put("attention_mask", OnnxTensor.createTensor(ENV, LongBuffer.wrap(mask), shape));
      feeds.put("token_type_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(types), shape));
      for (var e : params.entrySet()) {
        feeds.put(e.getKey(), OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(e.getValue()), paramShape));
      }
      try (OrtSession.Result result = s.run(feeds)) {
        DoubleBuffer b = ((OnnxTensor) result.get(0)).getDoubleBuffer();
        double[] out = new double[b.remaining()];
        b.get(out);
        return out;
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
  }

  /** The float64 tiny BERT's forward pass in plain Java, from its initializers, with an optional prefix. */
  private static final class Bert {
    private final Graph g;

    Bert(Graph g) {
      this.g = g;
    }

    private double[] w(String name) {
      return Tensors.readDoubles(g.initializers().get(name));
    }

    /** last_hidden_state [BATCH, SEQ, H]; prefix [n, LAYERS·2·H] in PEFT's layout. */
    double[] forward(long[] ids, long[] mask, long[] types, double[] prefix, int n) {
      double[] word = w("embeddings.word_embeddings.weight");
      double[] pos = w("embeddings.position_embeddings.weight");
      double[] type = w("embeddings.token_type_embeddings.weight");
      double[] out = new double[BATCH * SEQ * H];
      for (int b = 0; b < BATCH; b++) {
        double[][] h = new double[SEQ][H];
        for (int t = 0; t < SEQ; t++) {
          for (int k = 0; k < H; k++) {
            h[t][k] = word[(int) ids[b * SEQ + t] * H + k] + type[(int) types[b * SEQ + t] * H + k] + pos[t * H + k];
          }
        }
        h = layerNorm(h, "embeddings.LayerNorm");
        for (int l = 0; l < TinyBertHost.LAYERS; l++) {
          String p = "encoder.layer." + l;
          double[][] q = linear(h, p + ".attention.self.query");
          double[][] k = prepend(prefix, n, 2 * l, linear(h, p + ".attention.self.key"));
          double[][] v = prepend(prefix, n, 2 * l + 1, linear(h, p + ".attention.self.value"));
          double[][] ctx = new double[SEQ][H];
          int hd = H / TinyBertHost.HEADS;
          for (int head = 0; head < TinyBertHost.HEADS; head++) {
            for (int i = 0; i < SEQ; i++) {
              double[] scores = new double[n + SEQ];
              double max = Double.NEGATIVE_INFINITY;
              for (int j = 0; j < n + SEQ; j++) {
                double dot = 0;
                for (int d = 0; d < hd; d++) {
                  dot += q[i][head * hd + d] * k[j][head * hd + d];
                }
                double m = j < n ? 1 : mask[b * SEQ + j - n];
                scores[j] = dot / Math.sqrt(hd) + (1 - m) * -10000.0;
                max = Math.max(max, scores[j]);
              }
              double sum = 0;
              for (int j = 0; j < n + SEQ; j++) {
                scores[j] = Math.exp(scores[j] - max);
                sum += scores[j];
              }
              for (int j = 0; j < n + SEQ; j++) {
                for (int d = 0; d < hd; d++) {
                  ctx[i][head * hd + d] += scores[j] / sum * v[j][head * hd + d];
                }
              }
            }
          }
          double[][] a = layerNorm(add(linear(ctx, p + ".attention.output.dense"), h), p + ".attention.output.LayerNorm");
          double[][] inter = linear(a, p + ".intermediate.dense");
          for (double[] row : inter) {
            for (int c = 0; c < row.length; c++) {
              row[c] = row[c] * (1 + Math.tanh(row[c] / Math.sqrt(2))) * 0.5;
            }
          }
          h = layerNorm(add(linear(inter, p + ".output.dense"), a), p + ".output.LayerNorm");
        }
        for (int t = 0; t < SEQ; t++) {
          System.arraycopy(h[t], 0, out, (b * SEQ + t) * H, H);
        }
      }
      return out;
    }

    /** Rows {@code prefix[:, part·H:(part+1)·H]} before {@code x}. */
    private static double[][] prepend(double[] prefix, int n, int part, double[][] x) {
      double[][] y = new double[n + x.length][];
      int width = n == 0 ? 0 : prefix.length / n;
      for (int i = 0; i < n; i++) {
        y[i] = new double[H];
        System.arraycopy(prefix, i * width + part * H, y[i], 0, H);
      }
      System.arraycopy(x, 0, y, n, x.length);
      return y;
    }

    private double[][] linear(double[][] x, String module) {
      double[] wt = w(module + ".weight");
      double[] bias = w(module + ".bias");
      int in = x[0].length;
      int out = bias.length;
      double[][] y = new double[x.length][out];
      for (int i = 0; i < x.length; i++) {
        for (int o = 0; o < out; o++) {
          double s = bias[o];
          for (int c = 0; c < in; c++) {
            s += x[i][c] * wt[c * out + o];
          }
          y[i][o] = s;
        }
      }
      return y;
    }

    private static double[][] add(double[][] a, double[][] b) {
      double[][] y = new double[a.length][a[0].length];
      for (int i = 0; i < a.length; i++) {
        for (int c = 0; c < a[0].length; c++) {
          y[i][c] = a[i][c] + b[i][c];
        }
      }
      return y;
    }

    private double[][] layerNorm(double[][] x, String module) {
      double[] gamma = w(module + ".weight");
      double[] beta = w(module + ".bias");
      double[][] y = new double[x.length][H];
      for (int i = 0; i < x.length; i++) {
        double mean = 0;
        for (double v : x[i]) {
          mean += v / H;
        }
        double var = 0;
        for (double v : x[i]) {
          var += (v - mean) * (v - mean) / H;
        }
        for (int c = 0; c < H; c++) {
          y[i][c] = (x[i][c] - mean) / Math.sqrt(var + 1e-12) * gamma[c] + beta[c];
        }
      }
      return y;
    }
  }
}
