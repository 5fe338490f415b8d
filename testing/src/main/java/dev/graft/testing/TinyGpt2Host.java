package dev.graft.testing;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.ir.TensorType;
import java.util.List;

/**
 * A tiny GPT-2 built with the IR, shaped like a torch export of {@code GPT2LMHeadModel}: token
 * ({@code wte}) plus learned position ({@code wpe}) embeddings with positions from Shape →
 * Gather → Range; pre-LayerNorm decomposed (ReduceMean, Sub, Pow, Sqrt, Div, Mul, Add); the
 * fused {@code c_attn} projection (Conv1D: MatMul + bias) cut into q, k, v by three Slices;
 * heads via Reshape/Transpose; scores divided by √d; the causal mask as GPT-2 keeps it (a bool
 * lower-triangular buffer per layer, sliced to [1, 1, sequence, sequence], applied with Where
 * and finfo.min) plus the padding mask added as (1 − mask)·finfo.min; tanh-GELU decomposed
 * (0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))); MLP {@code c_fc}/{@code c_proj}; residuals;
 * {@code ln_f}; and LM logits tied to the token embedding (MatMul with a Transpose of {@code
 * transformer.wte.weight}). Node names as the export's ({@code /transformer/h.0/attn/c_attn/MatMul}),
 * parameter names as the module's ({@code transformer.h.0.attn.c_attn.weight}, [in, out] as
 * Conv1D stores it). Vocab 32, hidden 16, 2 layers, 2 heads of 8, MLP 64, 16 positions.
 */
public final class TinyGpt2Host extends TinyDecoderHost {
  static final int MLP = 4 * HIDDEN;
  static final int MAX_POSITIONS = 16;
  static final double LN_EPS = 1e-5;
  /** The folded head weight's name in {@link #withFoldedHead}, as the exporter names folded constants. */
  public static final String FOLDED_HEAD_WEIGHT = "onnx::MatMul_1024";

  private TinyGpt2Host(long seed, int elem) {
    super(seed, elem);
  }

  /** The host graph (shape-inferred), LM logits named {@link #LM_OUTPUT}. */
  public static Graph graph(long seed) {
    return graph(seed, LM_OUTPUT, TensorType.FLOAT);
  }

  /** The host graph with LM logits named {@code lmOutput}, in FLOAT or DOUBLE. */
  public static Graph graph(long seed, String lmOutput, int elem) {
    return new TinyGpt2Host(seed, elem).built(lmOutput);
  }

  /**
   * The host graph as {@code torch.onnx.export} writes a tied head with constant folding on: the
   * head's weight is a separate initializer {@value #FOLDED_HEAD_WEIGHT} [hidden, vocab], a
   * transposed copy of {@code transformer.wte.weight}, so {@code /lm_head/MatMul} is a linear site
   * whose output is the graph's LM logits output.
   */
  public static Graph withFoldedHead(long seed) {
    Graph g = graph(seed);
    Node transpose = g.producer(g.nodes().stream().filter(n -> n.name().equals("/lm_head/MatMul")).findFirst()
        .orElseThrow().input(1));
    double[] wte = Tensors.readDoubles(g.initializers().get("transformer.wte.weight"));
    double[] copy = new double[wte.length];
    for (int v = 0; v < VOCAB; v++) {
      for (int h = 0; h < HIDDEN; h++) {
        copy[h * VOCAB + v] = wte[v * HIDDEN + h];
      }
    }
    g.addInitializer(Tensors.floats(FOLDED_HEAD_WEIGHT, TensorType.FLOAT, List.of((long) HIDDEN, (long) VOCAB), copy),
        false);
    g.replaceUses(transpose.output(0), FOLDED_HEAD_WEIGHT, List.of());
    g.removeUnused();
    ShapeInference.run(g);
    return g;
  }

  /** transformers' NewGELUActivation as exported: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
  private String newGelu(String module, String x) {
    String half = g.op(module + "/Mul", "Mul", List.of(g.scalar(module + "/Constant", elem, 0.5), x));
    String cube = g.op(module + "/Pow", "Pow", List.of(x, g.scalar(module + "/Constant_1", elem, 3.0)));
    String c = g.op(module + "/Mul_1", "Mul", List.of(g.scalar(module + "/Constant_2", elem, 0.044715), cube));
    String inner = g.op(module + "/Add", "Add", List.of(x, c));
    String scaled = g.op(module + "/Mul_2", "Mul",
        List.of(g.scalar(module + "/Constant_3", elem, Math.sqrt(2 / Math.PI)), inner));
    String t = g.op(module + "/Tanh", "Tanh", List.of(scaled));
    String onePlus = g.op(module + "/Add_1", "Add", List.of(g.scalar(module + "/Constant_4", elem, 1.0), t));
    return g.op(module + "/Mul_3", "Mul", List.of(half, onePlus));
  }

  @Override
  void build(String lmOutput) {
    inputs();
    String wte = weight("transformer.wte.weight", 0.5, 0, VOCAB, HIDDEN);
    String tokens = g.op("/transformer/wte/Gather", "Gather", List.of(wte, "input_ids"));
    String seq = sequenceLength("/transformer");
    String range = g.op("/transformer/Range", "Range",
        List.of(int64Scalar("/transformer/Constant_1", 0), seq, int64Scalar("/transformer/Constant_2", 1)));
    String positionIds = g.op("/transformer/Unsqueeze", "Unsqueeze",
        List.of(range, g.longs("/transformer/Constant_3", List.of(0L))));
    String positions = g.op("/transformer/wpe/Gather", "Gather",
        List.of(weight("transformer.wpe.weight", 0.3, 0, MAX_POSITIONS, HIDDEN), positionIds));
    String h = g.op("/transformer/Add", "Add", List.of(tokens, positions));

    // Padding mask, [batch, 1, 1, sequence]: (1 − mask)·finfo.min, added to the scores.
    String mask4 = g.op("/transformer/Unsqueeze_1", "Unsqueeze",
        List.of("attention_mask", g.longs("/transformer/Constant_4", List.of(1L, 2L))));
    String maskF = g.op("/transformer/Cast", "Cast", List.of(mask4), attr("to", (long) elem));
    String inverted = g.op("/transformer/Sub", "Sub", List.of(g.scalar("/transformer/Constant_5", elem, 1.0), maskF));
    String padding = g.op("/transformer/Mul", "Mul", List.of(inverted, g.scalar("/transformer/Constant_6", elem, MASK_MIN)));
    // Causal buffer bounds: [:, :, 0:sequence, 0:sequence].
    String seq1 = g.op("/transformer/Unsqueeze_2", "Unsqueeze", List.of(seq, g.longs("/transformer/Constant_7", List.of(0L))));
    String ends = g.op("/transformer/Concat", "Concat", List.of(seq1, seq1), attr("axis", 0L));

    boolean[] lower = new boolean[MAX_POSITIONS * MAX_POSITIONS];
    for (int i = 0; i < MAX_POSITIONS; i++) {
      for (int j = 0; j <= i; j++) {
        lower[i * MAX_POSITIONS + j] = true;
      }
    }
    for (int l = 0; l < LAYERS; l++) {
      String m = "/transformer/h." + l;
      String p = "transformer.h." + l;
      String x = layerNorm(m + "/ln_1", p + ".ln_1", h, LN_EPS, HIDDEN);
      String a = m + "/attn";
      String qkv = linear(a + "/c_attn", p + ".attn.c_attn", x, HIDDEN, 3 * HIDDEN);
      String axis = g.longs(a + "/Constant", List.of(2L));
      String[] parts = new String[3];
      for (int k = 0; k < 3; k++) {
        parts[k] = g.op(a + "/Slice" + (k == 0 ? "" : "_" + k), "Slice", List.of(qkv,
            g.longs(a + "/Constant_start" + k, List.of((long) k * HIDDEN)),
            g.longs(a + "/Constant_end" + k, List.of((long) (k + 1) * HIDDEN)), axis));
      }
      String q = heads(a, "", parts[0]);
      String kT = g.op(a + "/Transpose_k", "Transpose",
          List.of(heads(a, "_1", parts[1])), attr("perm", List.of(0L, 1L, 3L, 2L)));
      String v = heads(a, "_2", parts[2]);
      String scores = g.op(a + "/MatMul", "MatMul", List.of(q, kT));
      String scaled = g.op(a + "/Div", "Div", List.of(scores, g.scalar(a + "/Constant_1", elem, Math.sqrt(HEAD_DIM))));
      String bias = bools(p + ".attn.bias", List.of(1L, 1L, (long) MAX_POSITIONS, (long) MAX_POSITIONS), lower);
      String causal = g.op(a + "/Slice_3", "Slice", List.of(bias, g.longs(a + "/Constant_2", List.of(0L, 0L)), ends,
          g.longs(a + "/Constant_3", List.of(2L, 3L))));
      String kept = g.op(a + "/Where", "Where", List.of(causal, scaled, g.scalar(a + "/Constant_4", elem, MASK_MIN)));
      String masked = g.op(a + "/Add", "Add", List.of(kept, padding));
      String probs = g.op(a + "/Softmax", "Softmax", List.of(masked), attr("axis", -1L));
      String ctx = mergeHeads(a, g.op(a + "/MatMul_1", "MatMul", List.of(probs, v)));
      String attn = linear(a + "/c_proj", p + ".attn.c_proj", ctx, HIDDEN, HIDDEN);
      h = g.op(m + "/Add", "Add", List.of(attn, h));
      x = layerNorm(m + "/ln_2", p + ".ln_2", h, LN_EPS, HIDDEN);
      String fc = linear(m + "/mlp/c_fc", p + ".mlp.c_fc", x, HIDDEN, MLP);
      String mlp = linear(m + "/mlp/c_proj", p + ".mlp.c_proj", newGelu(m + "/mlp/act", fc), MLP, HIDDEN);
      h = g.op(m + "/Add_1", "Add", List.of(mlp, h));
    }
    String last = layerNorm("/transformer/ln_f", "transformer.ln_f", h, LN_EPS, HIDDEN);
    g.outputs().add(g.opTo(HIDDEN_OUTPUT, "/transformer/Identity", "Identity", List.of(last)));
    String wteT = g.op("/lm_head/Transpose", "Transpose", List.of(wte), attr("perm", List.of(1L, 0L)));
    g.outputs().add(g.opTo(lmOutput, "/lm_head/MatMul", "MatMul", List.of(HIDDEN_OUTPUT, wteT)));
  }
}
