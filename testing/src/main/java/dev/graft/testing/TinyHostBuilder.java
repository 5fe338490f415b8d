package dev.graft.testing;

import static dev.graft.compiler.ir.Node.attr;

import com.google.protobuf.ByteString;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/** What the IR-built tiny hosts share: the graph, seeded weights in one element type, and torch-shaped blocks. */
abstract class TinyHostBuilder {
  final Graph g = new Graph();
  /** FLOAT as exported models are, or DOUBLE for finite-difference checks. */
  final int elem;
  private final Random random;
  /** How {@link #linear} writes its weights. */
  Quantization quantization = Quantization.NONE;
  /** The activation quantization of each value an int8 layer reads: (quantized, scale, zero point), shared. */
  private final Map<String, List<String>> quantized = new HashMap<>();

  /**
   * How the linear layers' weights are stored: float; int8 as ONNX Runtime's dynamic quantization
   * writes them ({@code DynamicQuantizeLinear → MatMulInteger → Cast → Mul} by the scales, int8
   * weights with per-column scales and nonzero zero points); or float weights equal to those int8
   * weights dequantized ({@code (Wq − zp)·scale}), the int8 host's float twin.
   */
  enum Quantization { NONE, INT8, DEQUANTIZED }

  TinyHostBuilder(long seed, int elem) {
    this.elem = elem;
    random = new Random(seed);
  }

  /** An initializer with real data: {@code offset + scale·N(0, 1)} (of {@code |scale·N(0, 1)|} when {@code positive}), drawn in order. */
  final String weight(String name, double scale, double offset, boolean positive, long... dims) {
    List<Long> d = new ArrayList<>();
    long n = 1;
    for (long x : dims) {
      d.add(x);
      n *= x;
    }
    double[] v = new double[(int) n];
    for (int i = 0; i < v.length; i++) {
      double z = scale * random.nextGaussian();
      v[i] = offset + (positive ? Math.abs(z) : z);
    }
    g.addInitializer(Tensors.floats(name, elem, d, v), false);
    return name;
  }

  final String weight(String name, double scale, double offset, long... dims) {
    return weight(name, scale, offset, false, dims);
  }

  /** {@code x·W + b} as a torch Linear (or Conv1D) exports: W [in, out] ~ N(0, 1/in), b ~ N(0, 0.01). */
  final String linear(String module, String param, String x, long in, long out) {
    if (quantization != Quantization.NONE) {
      return quantizedLinear(module, param, x, in, out);
    }
    String w = weight(param + ".weight", 1 / Math.sqrt(in), 0, in, out);
    String b = weight(param + ".bias", 0.1, 0, out);
    return g.op(module + "/Add", "Add", List.of(g.op(module + "/MatMul", "MatMul", List.of(x, w)), b));
  }

  /** LayerNorm over the last axis of width {@code hidden}, decomposed as torch exports it (ReduceMean, Sub, Pow, Sqrt, Div). */
  final String layerNorm(String module, String param, String x, double eps, long hidden) {
    String mean = g.op(module + "/ReduceMean", "ReduceMean", List.of(x), attr("axes", List.of(-1L)));
    String d = g.op(module + "/Sub", "Sub", List.of(x, mean));
    String sq = g.op(module + "/Pow", "Pow", List.of(d, g.scalar(module + "/Constant", elem, 2.0)));
    String var = g.op(module + "/ReduceMean_1", "ReduceMean", List.of(sq), attr("axes", List.of(-1L)));
    String e = g.op(module + "/Add", "Add", List.of(var, g.scalar(module + "/Constant_1", elem, eps)));
    String norm = g.op(module + "/Div", "Div", List.of(d, g.op(module + "/Sqrt", "Sqrt", List.of(e))));
    String scaled = g.op(module + "/Mul", "Mul", List.of(norm, weight(param + ".weight", 0.1, 1, hidden)));
    return g.op(module + "/Add_1", "Add", List.of(scaled, weight(param + ".bias", 0.1, 0, hidden)));
  }

  /**
   * {@link #linear} of an int8 or dequantized host: the same seeded float weight, quantized per
   * output column to int8 asymmetrically ({@code scale = (max − min)/255}, zero point {@code
   * round(−128 − min/scale)}), then either kept int8 in the int8 pattern or stored dequantized.
   */
  private String quantizedLinear(String module, String param, String x, long in, long out) {
    double[] w = new double[(int) (in * out)];
    for (int i = 0; i < w.length; i++) {
      w[i] = random.nextGaussian() / Math.sqrt(in);
    }
    byte[] q = new byte[w.length];
    byte[] zeroPoints = new byte[(int) out];
    double[] scales = new double[(int) out];
    double[] dequantized = new double[w.length];
    for (int j = 0; j < out; j++) {
      double min = 0;
      double max = 0;
      for (int i = 0; i < in; i++) {
        min = Math.min(min, w[(int) (i * out + j)]);
        max = Math.max(max, w[(int) (i * out + j)]);
      }
      // float32 scales, as the host stores them: the dequantized twin uses the same value.
      scales[j] = (float) ((max - min) / 255);
      int zp = (int) Math.max(-128, Math.min(127, Math.round(-128 - min / scales[j])));
      zeroPoints[j] = (byte) zp;
      for (int i = 0; i < in; i++) {
        int k = (int) (i * out + j);
        int v = (int) Math.max(-128, Math.min(127, Math.round(w[k] / scales[j]) + zp));
        q[k] = (byte) v;
        dequantized[k] = (float) ((v - zp) * (float) scales[j]);
      }
    }
    String b = weight(param + ".bias", 0.1, 0, out);
    if (quantization == Quantization.DEQUANTIZED) {
      g.addInitializer(Tensors.floats(param + ".weight", elem, List.of(in, out), dequantized), false);
      return g.op(module + "/Add", "Add", List.of(g.op(module + "/MatMul", "MatMul", List.of(x, param + ".weight")), b));
    }
    String wq = param + ".weight_quantized";
    g.addInitializer(TensorProto.newBuilder().setName(wq).setDataType(TensorType.INT8).addDims(in).addDims(out)
        .setRawData(ByteString.copyFrom(q)).build(), false);
    String zp = param + ".weight_zero_point";
    g.addInitializer(TensorProto.newBuilder().setName(zp).setDataType(TensorType.INT8).addDims(out)
        .setRawData(ByteString.copyFrom(zeroPoints)).build(), false);
    String ws = param + ".weight_scale";
    g.addInitializer(Tensors.floats(ws, TensorType.FLOAT, List.of(out), scales), false);
    List<String> xq = quantized.computeIfAbsent(x, v -> g.add(v + "_QuantizeLinear", "DynamicQuantizeLinear", "",
        List.of(v), 3, dev.graft.compiler.ir.Node.attrs()));
    String product = g.op(module + "/MatMul_quant", "MatMulInteger", List.of(xq.get(0), wq, xq.get(2), zp));
    String cast = g.op(module + "/MatMul_quant_cast", "Cast", List.of(product), attr("to", (long) TensorType.FLOAT));
    String s = g.op(module + "/MatMul_quant_scales_mul", "Mul", List.of(xq.get(1), ws));
    String y = g.op(module + "/MatMul_quant_output_scale_mul", "Mul", List.of(cast, s));
    return g.op(module + "/Add", "Add", List.of(b, y));
  }
}
