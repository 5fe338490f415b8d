package dev.graft.testing;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.List;

/**
 * A tiny Llama built with the IR, shaped like a torch export of {@code LlamaForCausalLM}: token
 * embeddings; RMSNorm decomposed (Cast, Pow, ReduceMean, Add ε, Sqrt, Reciprocal, Mul, Mul by
 * weight); q/k/v/o projections without bias whose weights are {@code onnx::MatMul_N}
 * initializers (as exports name transposed Linear weights); rotary position embeddings computed
 * in the graph (positions from Range, inv_freq [1, 4, 1] MatMul positions, Transpose, Concat,
 * Cos, Sin; rotate_half by Slice, Neg, Concat; q·cos + rotate_half(q)·sin); scores times
 * 1/√d; the causal mask as transformers builds it (ConstantOfShape finfo.min → Trilu upper k=1,
 * padded keys replaced by finfo.min with Equal/Where) added to the scores; SwiGLU MLP
 * (silu(gate) = gate·Sigmoid(gate), times up, then down); residuals; final RMSNorm; untied
 * {@code lm_head}. Vocab 32, hidden 16, 2 layers, 2 heads of 8, MLP 32.
 */
public final class TinyLlamaHost extends TinyDecoderHost {
  static final int MLP = 2 * HIDDEN;
  static final double RMS_EPS = 1e-6;
  static final double ROPE_THETA = 10000;
  /** The untied LM head weight [hidden, vocab]. */
  public static final String LM_HEAD_WEIGHT = "onnx::MatMul_999";
  private int matmulWeights = 100;

  private TinyLlamaHost(long seed, int elem) {
    super(seed, elem);
  }

  /** The host graph (shape-inferred), LM logits named {@link #LM_OUTPUT}. */
  public static Graph graph(long seed) {
    return graph(seed, LM_OUTPUT, TensorType.FLOAT);
  }

  /** The host graph with LM logits named {@code lmOutput}, in FLOAT or DOUBLE. */
  public static Graph graph(long seed, String lmOutput, int elem) {
    return new TinyLlamaHost(seed, elem).built(lmOutput);
  }

  private String linear(String module, String x, long in, long out) {
    String w = weight("onnx::MatMul_" + matmulWeights++, 1 / Math.sqrt(in), 0, in, out);
    return g.op(module + "/MatMul", "MatMul", List.of(x, w));
  }

  private String rmsNorm(String module, String param, String x) {
    String f = g.op(module + "/Cast", "Cast", List.of(x), attr("to", (long) elem));
    String sq = g.op(module + "/Pow", "Pow", List.of(f, g.scalar(module + "/Constant", elem, 2.0)));
    String var = g.op(module + "/ReduceMean", "ReduceMean", List.of(sq), attr("axes", List.of(-1L)));
    String eps = g.op(module + "/Add", "Add", List.of(var, g.scalar(module + "/Constant_1", elem, RMS_EPS)));
    String inv = g.op(module + "/Reciprocal", "Reciprocal", List.of(g.op(module + "/Sqrt", "Sqrt", List.of(eps))));
    String norm = g.op(module + "/Mul", "Mul", List.of(f, inv));
    String back = g.op(module + "/Cast_1", "Cast", List.of(norm), attr("to", (long) elem));
    return g.op(module + "/Mul_1", "Mul", List.of(weight(param + ".weight", 0.1, 1, HIDDEN), back));
  }

  /** rotate_half: cat(−x[..., d/2:], x[..., :d/2]). */
  private String rotateHalf(String module, String suffix, String x) {
    String axis = g.longs(module + "/Constant_axis" + suffix, List.of(-1L));
    String x1 = g.op(module + "/Slice" + suffix, "Slice", List.of(x, g.longs(module + "/Constant_s" + suffix, List.of(0L)),
        g.longs(module + "/Constant_e" + suffix, List.of((long) HEAD_DIM / 2)), axis));
    String x2 = g.op(module + "/Slice_1" + suffix, "Slice", List.of(x,
        g.longs(module + "/Constant_s1" + suffix, List.of((long) HEAD_DIM / 2)),
        g.longs(module + "/Constant_e1" + suffix, List.of(Long.MAX_VALUE)), axis));
    return g.op(module + "/Concat" + suffix, "Concat",
        List.of(g.op(module + "/Neg" + suffix, "Neg", List.of(x2)), x1), attr("axis", -1L));
  }

  private String rope(String module, String suffix, String x, String cos, String sin) {
    String a = g.op(module + "/Mul_rope" + suffix, "Mul", List.of(x, cos));
    String b = g.op(module + "/Mul_rope_1" + suffix, "Mul", List.of(rotateHalf(module, suffix, x), sin));
    return g.op(module + "/Add_rope" + suffix, "Add", List.of(a, b));
  }

  @Override
  void build(String lmOutput) {
    inputs();
    String h = g.op("/model/embed_tokens/Gather", "Gather",
        List.of(weight("model.embed_tokens.weight", 0.5, 0, VOCAB, HIDDEN), "input_ids"));
    String seq = sequenceLength("/model");
    String range = g.op("/model/Range", "Range",
        List.of(int64Scalar("/model/Constant_1", 0), seq, int64Scalar("/model/Constant_2", 1)));
    String positionIds = g.op("/model/Unsqueeze", "Unsqueeze", List.of(range, g.longs("/model/Constant_3", List.of(0L))));

    // Rotary tables [1, 1, sequence, head_dim], as LlamaRotaryEmbedding computes them.
    String r = "/model/rotary_emb";
    double[] invFreq = new double[HEAD_DIM / 2];
    for (int i = 0; i < invFreq.length; i++) {
      invFreq[i] = 1 / Math.pow(ROPE_THETA, 2.0 * i / HEAD_DIM);
    }
    String inv = g.constant(r + "/inv_freq", Tensors.floats("inv_freq", elem, List.of(1L, (long) HEAD_DIM / 2, 1L), invFreq));
    String pos = g.op(r + "/Cast", "Cast", List.of(g.op(r + "/Unsqueeze", "Unsqueeze",
        List.of(positionIds, g.longs(r + "/Constant", List.of(1L))))), attr("to", (long) elem));
    String freqs = g.op(r + "/Transpose", "Transpose", List.of(g.op(r + "/MatMul", "MatMul", List.of(inv, pos))),
        attr("perm", List.of(0L, 2L, 1L)));
    String emb = g.op(r + "/Concat", "Concat", List.of(freqs, freqs), attr("axis", -1L));
    String headAxis = g.longs("/model/Constant_4", List.of(1L));
    String cos = g.op("/model/Unsqueeze_1", "Unsqueeze", List.of(g.op(r + "/Cos", "Cos", List.of(emb)), headAxis));
    String sin = g.op("/model/Unsqueeze_2", "Unsqueeze", List.of(g.op(r + "/Sin", "Sin", List.of(emb)), headAxis));

    // Causal mask [batch, 1, sequence, sequence]: finfo.min above the diagonal and at padded keys.
    String seq1 = g.op("/model/Unsqueeze_3", "Unsqueeze", List.of(seq, g.longs("/model/Constant_5", List.of(0L))));
    String square = g.op("/model/Concat", "Concat", List.of(seq1, seq1), attr("axis", 0L));
    String full = g.op("/model/ConstantOfShape", "ConstantOfShape", List.of(square),
        attr("value", Tensors.floats("value", elem, List.of(1L), new double[] {MASK_MIN})));
    String upper = g.op("/model/Trilu", "Trilu", List.of(full, int64Scalar("/model/Constant_6", 1)), attr("upper", 1L));
    String causal = g.op("/model/Unsqueeze_4", "Unsqueeze", List.of(upper, g.longs("/model/Constant_7", List.of(0L, 1L))));
    String keys = g.op("/model/Unsqueeze_5", "Unsqueeze", List.of("attention_mask", g.longs("/model/Constant_8", List.of(1L, 2L))));
    String padded = g.op("/model/Equal", "Equal", List.of(keys, int64Scalar("/model/Constant_9", 0)));
    String mask = g.op("/model/Where", "Where", List.of(padded, g.scalar("/model/Constant_10", elem, MASK_MIN), causal));

    for (int l = 0; l < LAYERS; l++) {
      String m = "/model/layers." + l;
      String p = "model.layers." + l;
      String x = rmsNorm(m + "/input_layernorm", p + ".input_layernorm", h);
      String a = m + "/self_attn";
      String q = rope(a, "", heads(a, "", linear(a + "/q_proj", x, HIDDEN, HIDDEN)), cos, sin);
      String k = rope(a, "_1", heads(a, "_1", linear(a + "/k_proj", x, HIDDEN, HIDDEN)), cos, sin);
      String v = heads(a, "_2", linear(a + "/v_proj", x, HIDDEN, HIDDEN));
      String kT = g.op(a + "/Transpose_k", "Transpose", List.of(k), attr("perm", List.of(0L, 1L, 3L, 2L)));
      String scores = g.op(a + "/Mul", "Mul",
          List.of(g.op(a + "/MatMul", "MatMul", List.of(q, kT)), g.scalar(a + "/Constant", elem, 1 / Math.sqrt(HEAD_DIM))));
      String masked = g.op(a + "/Add", "Add", List.of(scores, mask));
      String probs = g.op(a + "/Softmax", "Softmax", List.of(masked), attr("axis", -1L));
      String ctx = mergeHeads(a, g.op(a + "/MatMul_1", "MatMul", List.of(probs, v)));
      h = g.op(m + "/Add", "Add", List.of(h, linear(a + "/o_proj", ctx, HIDDEN, HIDDEN)));
      x = rmsNorm(m + "/post_attention_layernorm", p + ".post_attention_layernorm", h);
      String gate = linear(m + "/mlp/gate_proj", x, HIDDEN, MLP);
      String silu = g.op(m + "/mlp/act_fn/Mul", "Mul",
          List.of(gate, g.op(m + "/mlp/act_fn/Sigmoid", "Sigmoid", List.of(gate))));
      String up = linear(m + "/mlp/up_proj", x, HIDDEN, MLP);
      String down = linear(m + "/mlp/down_proj", g.op(m + "/mlp/Mul", "Mul", List.of(silu, up)), MLP, HIDDEN);
      h = g.op(m + "/Add_1", "Add", List.of(h, down));
    }
    String last = rmsNorm("/model/norm", "model.norm", h);
    g.outputs().add(g.opTo(HIDDEN_OUTPUT, "/model/Identity", "Identity", List.of(last)));
    String w = weight(LM_HEAD_WEIGHT, 1 / Math.sqrt(HIDDEN), 0, HIDDEN, VOCAB);
    g.outputs().add(g.opTo(lmOutput, "/lm_head/MatMul", "MatMul", List.of(HIDDEN_OUTPUT, w)));
  }
}
