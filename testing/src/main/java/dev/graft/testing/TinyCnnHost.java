package dev.graft.testing;

import dev.graft.compiler.HostModel;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import java.util.ArrayList;
import java.util.List;

/**
 * A tiny CNN host built with the IR, named like a torch export. Input {@code pixel_values}
 * float32 [batch, 1, 8, 8]; output {@code last_hidden_state} [batch, 2, 12]:
 *
 * <pre>
 * /stem/conv/Conv 1→4, 3x3, pad 1, bias → /stem/act/Relu                         [b, 4, 8, 8]
 * /proj: NCHW→NHWC, /proj/dense/MatMul [4, 8] + bias (a 1x1 "linear"), → NCHW  [b, 8, 8, 8]
 * /block/bn/BatchNormalization (inference) → /block/act/Relu
 * /block/pool/MaxPool 2x2 stride 2                                               [b, 8, 4, 4]
 * /block/conv/Conv 8→8, group 2, 3x3, stride 2, pad 1, bias                      [b, 8, 2, 2]
 * /block/avg/AveragePool 2x2 stride 1, pads (0,0,1,1), count_include_pad 0       [b, 8, 2, 2]
 * /block/Add: avg + /block/gap/GlobalAveragePool(avg)                            [b, 8, 2, 2]
 * /fc: Reshape [b, 32], /fc/dense/Gemm W [24, 32] transB=1 alpha 0.5 + C [24]     [b, 24]
 * Reshape [b, 2, 12] (2 positions × 12 channels)                                 [b, 2, 12]
 * </pre>
 *
 * The linear sites are {@code /proj/dense/MatMul} (upstream of BatchNormalization, Relu, MaxPool,
 * the grouped strided Conv, AveragePool and GlobalAveragePool) and {@code /fc/dense/Gemm}.
 * Weights are seeded random float32 initializers with real data (the larger ones are external
 * after import, as a real host's would be).
 */
public final class TinyCnnHost extends TinyHostBuilder {
  public static final int SIZE = 8;
  static final long HIDDEN = 12;
  private static final int F = TensorType.FLOAT;

  private TinyCnnHost(long seed) {
    super(seed, F);
  }

  public static Graph graph(long seed) {
    return new TinyCnnHost(seed).build();
  }

  public static HostModel host(long seed) {
    return HostModel.of("tiny-cnn", OnnxExport.write(graph(seed), "tiny-cnn"));
  }

  private String weight(String name, double scale, long... dims) {
    return weight(name, scale, 0, false, dims);
  }

  private static AttributeProto ints(String name, long... values) {
    List<Long> l = new ArrayList<>();
    for (long v : values) {
      l.add(v);
    }
    return attr(name, l);
  }

  private Graph build() {
    g.addInput("pixel_values", TensorType.of(F, List.of(Dim.symbol("batch"), Dim.of(1), Dim.of(SIZE), Dim.of(SIZE))));
    String stem = g.op("/stem/conv/Conv", "Conv", List.of("pixel_values", weight("stem.conv.weight", 1.0 / 3, 4, 1, 3, 3),
        weight("stem.conv.bias", 0.1, 4)), ints("kernel_shape", 3, 3), ints("pads", 1, 1, 1, 1));
    String act = g.op("/stem/act/Relu", "Relu", List.of(stem));
    String nhwc = g.op("/proj/Transpose", "Transpose", List.of(act), ints("perm", 0, 2, 3, 1));
    String proj = g.op("/proj/dense/Add", "Add", List.of(
        g.op("/proj/dense/MatMul", "MatMul", List.of(nhwc, weight("proj.dense.weight", 0.5, 4, 8))),
        weight("proj.dense.bias", 0.1, 8)));
    String nchw = g.op("/proj/Transpose_1", "Transpose", List.of(proj), ints("perm", 0, 3, 1, 2));
    String bn = g.op("/block/bn/BatchNormalization", "BatchNormalization", List.of(nchw,
        weight("block.bn.weight", 0.1, 1, false, 8), weight("block.bn.bias", 0.1, 8),
        weight("block.bn.running_mean", 0.1, 8), weight("block.bn.running_var", 0.3, 0.5, true, 8)),
        attr("epsilon", 1e-5f));
    String relu = g.op("/block/act/Relu", "Relu", List.of(bn));
    String pool = g.op("/block/pool/MaxPool", "MaxPool", List.of(relu), ints("kernel_shape", 2, 2), ints("strides", 2, 2));
    String conv = g.op("/block/conv/Conv", "Conv", List.of(pool, weight("block.conv.weight", 1.0 / 6, 8, 4, 3, 3),
        weight("block.conv.bias", 0.1, 8)), ints("kernel_shape", 3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 1),
        attr("group", 2L));
    String avg = g.op("/block/avg/AveragePool", "AveragePool", List.of(conv), ints("kernel_shape", 2, 2),
        ints("pads", 0, 0, 1, 1), attr("count_include_pad", 0L));
    String gap = g.op("/block/gap/GlobalAveragePool", "GlobalAveragePool", List.of(avg));
    String block = g.op("/block/Add", "Add", List.of(avg, gap));
    String flat = g.op("/fc/Reshape", "Reshape", List.of(block, g.longs("/fc/Constant", List.of(0L, 32L))));
    String fc = g.op("/fc/dense/Gemm", "Gemm", List.of(flat, weight("fc.dense.weight", 1 / Math.sqrt(32), 24, 32),
        weight("fc.dense.bias", 0.1, 24)), attr("transB", 1L), attr("alpha", 0.5f));
    String tokens = g.op("/fc/Reshape_1", "Reshape", List.of(fc, g.longs("/fc/Constant_1", List.of(0L, 2L, HIDDEN))));
    g.outputs().add(g.opTo("last_hidden_state", "/Identity", "Identity", List.of(tokens)));
    ShapeInference.run(g);
    return g;
  }
}
