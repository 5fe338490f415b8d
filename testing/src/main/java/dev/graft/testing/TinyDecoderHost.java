package dev.graft.testing;

import dev.graft.compiler.HostModel;

import static dev.graft.compiler.ir.Node.attr;

import com.google.protobuf.ByteString;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.List;

/**
 * What the tiny decoder hosts ({@link TinyGpt2Host}, {@link TinyLlamaHost}) share: dims (vocab
 * 32, hidden 16, 2 layers, 2 heads of 8), seeded float32 (or float64) weights with real data, the int64
 * [batch, sequence] inputs {@code input_ids}/{@code attention_mask}, the sequence length as
 * torch exports compute it (Shape → Gather), and head splitting/merging as Reshape/Transpose.
 * Outputs of both hosts: {@link #HIDDEN_OUTPUT} [batch, sequence, hidden] first, then {@link
 * #LM_OUTPUT} [batch, sequence, vocab].
 */
public abstract class TinyDecoderHost extends TinyHostBuilder {
  public static final int VOCAB = 32;
  public static final int HIDDEN = 16;
  static final int HEADS = 2;
  static final int HEAD_DIM = HIDDEN / HEADS;
  public static final int LAYERS = 2;
  public static final String HIDDEN_OUTPUT = "last_hidden_state";
  /**
   * The LM logits output. Not {@code logits} as Hugging Face exports name it: the
   * classification head pass adds a value named {@code logits}, and compiling a host that
   * already has one throws IllegalArgumentException("value name already used: logits") from
   * {@code Graph.opTo} instead of reporting a diagnostic (a compiler gap left to the head/loss
   * work).
   */
  public static final String LM_OUTPUT = "lm_logits";
  /** torch.finfo(torch.float32).min, the mask value transformers uses. */
  static final double MASK_MIN = -Float.MAX_VALUE;

  TinyDecoderHost(long seed, int elem) {
    super(seed, elem);
  }

  /** Builds the graph (inputs, nodes, both outputs); callers run shape inference. */
  abstract void build(String lmOutput);

  /** The graph built and shape-inferred. */
  final Graph built(String lmOutput) {
    build(lmOutput);
    ShapeInference.run(g);
    return g;
  }

  final void inputs() {
    List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
    g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
    g.addInput("attention_mask", TensorType.of(TensorType.INT64, bs));
  }

  public static HostModel host(Graph graph) {
    return HostModel.of("tiny-decoder", OnnxExport.write(graph, "tiny-decoder"));
  }

  /** A bool initializer (Tensors only makes floating and int64 ones). */
  final String bools(String name, List<Long> dims, boolean[] values) {
    byte[] raw = new byte[values.length];
    for (int i = 0; i < values.length; i++) {
      raw[i] = (byte) (values[i] ? 1 : 0);
    }
    g.addInitializer(TensorProto.newBuilder().setName(name).setDataType(TensorType.BOOL).addAllDims(dims)
        .setRawData(ByteString.copyFrom(raw)).build(), false);
    return name;
  }

  final String int64Scalar(String base, long value) {
    return g.constant(base, Tensors.longs(base, List.of(), List.of(value)));
  }

  /** The sequence length as a 0-D int64 (Shape → Gather), the way torch exports compute it. */
  final String sequenceLength(String module) {
    String shape = g.op(module + "/Shape", "Shape", List.of("input_ids"));
    return g.op(module + "/Gather", "Gather", List.of(shape, int64Scalar(module + "/Constant", 1)), attr("axis", 0L));
  }

  /** [batch, sequence, hidden] → [batch, heads, sequence, head_dim] (perm 0,2,1,3). */
  final String heads(String module, String suffix, String x) {
    String split = g.longs(module + "/Constant_split" + suffix, List.of(0L, 0L, (long) HEADS, (long) HEAD_DIM));
    return g.op(module + "/Transpose" + suffix, "Transpose",
        List.of(g.op(module + "/Reshape" + suffix, "Reshape", List.of(x, split))), attr("perm", List.of(0L, 2L, 1L, 3L)));
  }

  /** [batch, heads, sequence, head_dim] → [batch, sequence, hidden]. */
  final String mergeHeads(String module, String ctx) {
    String t = g.op(module + "/Transpose_merge", "Transpose", List.of(ctx), attr("perm", List.of(0L, 2L, 1L, 3L)));
    return g.op(module + "/Reshape_merge", "Reshape",
        List.of(t, g.longs(module + "/Constant_merge", List.of(0L, 0L, (long) HIDDEN))));
  }
}
