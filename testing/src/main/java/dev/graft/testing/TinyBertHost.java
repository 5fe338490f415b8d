package dev.graft.testing;

import dev.graft.compiler.HostModel;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.ArrayList;
import java.util.List;

/**
 * A tiny BERT-style encoder host built with the IR, shaped like a torch export: vocab 50,
 * hidden 8, 2 heads of 4, intermediate 16, 2 layers, decomposed LayerNorm, erf-GELU, inputs
 * {@code input_ids}/{@code attention_mask}/{@code token_type_ids} int64 [batch, sequence],
 * output {@code last_hidden_state} [batch, sequence, 8]. Weights are seeded random float32
 * initializers with real data (not external), node names as in the real export.
 */
public final class TinyBertHost extends TinyHostBuilder {
  static final int VOCAB = 50;
  public static final int HIDDEN = 8;
  public static final int HEADS = 2;
  static final int INTERMEDIATE = 16;
  public static final int LAYERS = 2;
  static final int MAX_POSITIONS = 16;

  private TinyBertHost(long seed, int elem) {
    super(seed, elem);
  }

  /** The host graph (shape-inferred), float32. */
  public static Graph graph(long seed) {
    return graph(seed, TensorType.FLOAT);
  }

  /**
   * The host graph in {@code elem} (FLOAT or DOUBLE). ONNX Runtime has no float64 Erf, so the
   * float64 host's activation is {@code x·(1 + tanh(x/√2))/2} (a smooth GELU-like one) instead.
   */
  public static Graph graph(long seed, int elem) {
    return new TinyBertHost(seed, elem).build();
  }

  /**
   * The host with int8 linear layers (float32 otherwise), as ONNX Runtime's dynamic quantization
   * writes them: each of the 12 linear layers {@code DynamicQuantizeLinear → MatMulInteger → Cast
   * → Mul} by the scales, then its float bias; query, key and value share one quantization of
   * their input. Node names as in the langchain4j {@code -q} export ({@code …/query/MatMul_quant}).
   */
  public static Graph int8Graph(long seed) {
    TinyBertHost b = new TinyBertHost(seed, TensorType.FLOAT);
    b.quantization = Quantization.INT8;
    return b.build();
  }

  /**
   * The float twin of {@link #int8Graph} (same seed): every linear weight is the int8 one
   * dequantized, {@code (Wq − zp)·scale}, in {@code elem}; the rest is the same host.
   */
  public static Graph dequantizedGraph(long seed, int elem) {
    TinyBertHost b = new TinyBertHost(seed, elem);
    b.quantization = Quantization.DEQUANTIZED;
    return b.build();
  }

  public static HostModel host(long seed) {
    return HostModel.of("tiny", OnnxExport.write(graph(seed), "tiny"));
  }

  public static HostModel host(Graph graph) {
    return HostModel.of("tiny", OnnxExport.write(graph, "tiny"));
  }

  private Graph build() {
    List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
    for (String in : List.of("input_ids", "attention_mask", "token_type_ids")) {
      g.addInput(in, TensorType.of(TensorType.INT64, bs));
    }
    // Embeddings.
    String word = g.op("/embeddings/word_embeddings/Gather", "Gather",
        List.of(weight("embeddings.word_embeddings.weight", 0.5, 0, VOCAB, HIDDEN), "input_ids"));
    List<Long> positions = new ArrayList<>();
    for (long i = 0; i < MAX_POSITIONS; i++) {
      positions.add(i);
    }
    g.addInitializer(Tensors.longs("embeddings.position_ids", List.of(1L, (long) MAX_POSITIONS), positions), false);
    String seq = g.op("/embeddings/Shape", "Shape", List.of("input_ids"), attr("start", 1L), attr("end", 2L));
    String posIds = g.op("/embeddings/Slice", "Slice", List.of("embeddings.position_ids",
        g.longs("/embeddings/Slice/starts", List.of(0L)), seq, g.longs("/embeddings/Slice/axes", List.of(1L))));
    String pos = g.op("/embeddings/position_embeddings/Gather", "Gather",
        List.of(weight("embeddings.position_embeddings.weight", 0.5, 0, MAX_POSITIONS, HIDDEN), posIds));
    String type = g.op("/embeddings/token_type_embeddings/Gather", "Gather",
        List.of(weight("embeddings.token_type_embeddings.weight", 0.5, 0, 2, HIDDEN), "token_type_ids"));
    String sum = g.op("/embeddings/Add_1", "Add", List.of(g.op("/embeddings/Add", "Add", List.of(word, type)), pos));
    String h = layerNorm("/embeddings/LayerNorm", "embeddings.LayerNorm", sum, 1e-12, HIDDEN);
    // Extended attention mask: (1 - mask) * -10000, [batch, 1, 1, sequence].
    String mask4 = g.op("/Unsqueeze", "Unsqueeze", List.of("attention_mask", g.longs("/Unsqueeze/axes", List.of(1L, 2L))));
    String maskF = g.op("/Cast", "Cast", List.of(mask4), attr("to", (long) elem));
    String inverted = g.op("/Sub", "Sub", List.of(g.scalar("/Constant", elem, 1.0), maskF));
    String maskAdd = g.op("/Mul", "Mul", List.of(inverted, g.scalar("/Constant_1", elem, -10000.0)));

    long headDim = HIDDEN / HEADS;
    for (int l = 0; l < LAYERS; l++) {
      String m = "/encoder/layer." + l;
      String p = "encoder.layer." + l;
      String q = linear(m + "/attention/self/query", p + ".attention.self.query", h, HIDDEN, HIDDEN);
      String k = linear(m + "/attention/self/key", p + ".attention.self.key", h, HIDDEN, HIDDEN);
      String v = linear(m + "/attention/self/value", p + ".attention.self.value", h, HIDDEN, HIDDEN);
      String split = g.longs(m + "/attention/self/split_shape", List.of(0L, 0L, (long) HEADS, headDim));
      String qh = g.op(m + "/attention/self/Transpose", "Transpose",
          List.of(g.op(m + "/attention/self/Reshape", "Reshape", List.of(q, split))), attr("perm", List.of(0L, 2L, 1L, 3L)));
      String kh = g.op(m + "/attention/self/Transpose_1", "Transpose",
          List.of(g.op(m + "/attention/self/Reshape_1", "Reshape", List.of(k, split))), attr("perm", List.of(0L, 2L, 3L, 1L)));
      String vh = g.op(m + "/attention/self/Transpose_2", "Transpose",
          List.of(g.op(m + "/attention/self/Reshape_2", "Reshape", List.of(v, split))), attr("perm", List.of(0L, 2L, 1L, 3L)));
      String scores = g.op(m + "/attention/self/MatMul", "MatMul", List.of(qh, kh));
      String scaled = g.op(m + "/attention/self/Div", "Div",
          List.of(scores, g.scalar(m + "/attention/self/Constant", elem, Math.sqrt(headDim))));
      String masked = g.op(m + "/attention/self/Add", "Add", List.of(scaled, maskAdd));
      String probs = g.op(m + "/attention/self/Softmax", "Softmax", List.of(masked), attr("axis", -1L));
      String ctx = g.op(m + "/attention/self/MatMul_1", "MatMul", List.of(probs, vh));
      String ctxT = g.op(m + "/attention/self/Transpose_3", "Transpose", List.of(ctx), attr("perm", List.of(0L, 2L, 1L, 3L)));
      String merged = g.op(m + "/attention/self/Reshape_3", "Reshape",
          List.of(ctxT, g.longs(m + "/attention/self/merge_shape", List.of(0L, 0L, (long) HIDDEN))));
      String attnOut = linear(m + "/attention/output/dense", p + ".attention.output.dense", merged, HIDDEN, HIDDEN);
      String attnRes = g.op(m + "/attention/output/Add", "Add", List.of(attnOut, h));
      String a = layerNorm(m + "/attention/output/LayerNorm", p + ".attention.output.LayerNorm", attnRes, 1e-12, HIDDEN);
      String inter = linear(m + "/intermediate/dense", p + ".intermediate.dense", a, HIDDEN, INTERMEDIATE);
      String act = elem == TensorType.DOUBLE ? "Tanh" : "Erf";
      String erf = g.op(m + "/intermediate/intermediate_act_fn/" + act, act, List.of(
          g.op(m + "/intermediate/intermediate_act_fn/Div", "Div",
              List.of(inter, g.scalar(m + "/intermediate/intermediate_act_fn/Constant", elem, Math.sqrt(2))))));
      String onePlus = g.op(m + "/intermediate/intermediate_act_fn/Add", "Add",
          List.of(erf, g.scalar(m + "/intermediate/intermediate_act_fn/Constant_1", elem, 1.0)));
      String gelu = g.op(m + "/intermediate/intermediate_act_fn/Mul_1", "Mul", List.of(
          g.op(m + "/intermediate/intermediate_act_fn/Mul", "Mul", List.of(inter, onePlus)),
          g.scalar(m + "/intermediate/intermediate_act_fn/Constant_2", elem, 0.5)));
      String out = linear(m + "/output/dense", p + ".output.dense", gelu, INTERMEDIATE, HIDDEN);
      String res = g.op(m + "/output/Add", "Add", List.of(out, a));
      h = layerNorm(m + "/output/LayerNorm", p + ".output.LayerNorm", res, 1e-12, HIDDEN);
    }
    g.outputs().add(g.opTo("last_hidden_state", "/Identity", "Identity", List.of(h)));
    ShapeInference.run(g);
    return g;
  }
}
