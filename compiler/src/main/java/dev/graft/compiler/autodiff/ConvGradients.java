package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.ConvGeometry;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of Gemm and the 2-D CNN ops (listed in {@link GradientRegistry}). All
 * emit standard ai.onnx opset-17 ops only:
 *
 * <ul>
 *   <li>Gemm: Gemm with swapped transposes, the same {@code alpha}; C's gradient is {@code beta·g}
 *       summed over its broadcast axes.
 *   <li>Conv (2-D, any group count, strides, pads, dilations, auto_pad): dX is a ConvTranspose
 *       of the gradient with the same weight and geometry ({@code output_padding} restores the
 *       rows past the last window); dW is a Conv of the (group-split, batch-to-channel
 *       transposed) input with the transposed gradient as kernel, strides and dilations
 *       swapped, cropped to the kernel size; dB sums the gradient over N, H, W.
 *   <li>MaxPool: scatter-adds the gradient to the positions MaxPool's {@code Indices} output
 *       names (recomputed when the node does not output them). Tie convention: the whole
 *       gradient of a window goes to the one element whose index MaxPool reports (ONNX
 *       Runtime: the first maximum in row-major window order).
 *   <li>AveragePool: the gradient divided by each window's divisor (kH·kW, or the count of
 *       non-pad elements when {@code count_include_pad=0}), spread back by a ConvTranspose
 *       with an all-ones kernel per channel.
 *   <li>GlobalAveragePool: the gradient divided by H·W, expanded.
 *   <li>BatchNormalization, inference mode only: per-channel affine in X with frozen running
 *       statistics; gradients for X, scale, B (and mean/var, should they ever be trainable).
 * </ul>
 *
 * ONNX Runtime's CPU Conv, ConvTranspose, AveragePool and GlobalAveragePool kernels are
 * float32 only; Gemm, MaxPool and BatchNormalization also run in float64.
 */
final class ConvGradients {
  private ConvGradients() {}

  private static List<@Nullable String> nulls(Node n) {
    List<@Nullable String> r = new ArrayList<>();
    for (int i = 0; i < n.inputs().size(); i++) {
      r.add(null);
    }
    return r;
  }

  private static ConvGeometry geometry(Node n, Grad c, long[] kernel) {
    try {
      return ConvGeometry.of(n, c.type(n.input(0)), kernel);
    } catch (IllegalArgumentException e) {
      throw new MissingGradientException(n, e.getMessage());
    }
  }

  private static List<Long> list(long[] v) {
    List<Long> l = new ArrayList<>();
    for (long x : v) {
      l.add(x);
    }
    return l;
  }

  // ---- Gemm: Y = alpha·A'·B' + beta·C, A' = transA ? Aᵀ : A, B' = transB ? Bᵀ : B ---------

  static List<@Nullable String> gemm(Node n, List<@Nullable String> g, Grad c) {
    String a = n.input(0);
    String b = n.input(1);
    String gy = g.get(0);
    if (c.type(a).rank() != 2 || c.type(b).rank() != 2) {
      throw new MissingGradientException(n, "Gemm operands must be 2-D");
    }
    long ta = n.attrInt("transA", 0);
    long tb = n.attrInt("transB", 0);
    float alpha = n.attrFloat("alpha", 1f);
    float beta = n.attrFloat("beta", 1f);
    List<@Nullable String> r = nulls(n);
    if (c.needs(0)) {
      // dA' = alpha·G·B'ᵀ; with transA, dA = dA'ᵀ = alpha·B'·Gᵀ.
      r.set(0, ta == 0
          ? c.op("Gemm", List.of(gy, b), attr("alpha", alpha), attr("transB", 1 - tb))
          : c.op("Gemm", List.of(b, gy), attr("alpha", alpha), attr("transA", tb), attr("transB", 1L)));
    }
    if (c.needs(1)) {
      // dB' = alpha·A'ᵀ·G; with transB, dB = dB'ᵀ = alpha·Gᵀ·A'.
      r.set(1, tb == 0
          ? c.op("Gemm", List.of(a, gy), attr("alpha", alpha), attr("transA", 1 - ta))
          : c.op("Gemm", List.of(gy, a), attr("alpha", alpha), attr("transA", 1L), attr("transB", ta)));
    }
    if (c.needs(2)) {
      String scaled = beta == 1f ? gy : c.mul(gy, c.scalar(beta, n.output(0)));
      r.set(2, c.unbroadcast(scaled, c.type(n.output(0)), n.input(2)));
    }
    return r;
  }

  // ---- Conv -----------------------------------------------------------------------------

  static List<@Nullable String> conv(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    String w = n.input(1);
    String gy = g.get(0);
    TensorType tx = c.type(x);
    TensorType tw = c.type(w);
    if (!tw.hasRank() || tw.rank() != 4 || !tw.dims().stream().allMatch(Dim::isKnown)) {
      throw new MissingGradientException(n, "Conv gradient needs a 2-D kernel [M, C/group, kH, kW] of fixed size, weight is " + tw);
    }
    ConvGeometry geo = geometry(n, c, new long[] {tw.dim(2).size(), tw.dim(3).size()});
    long group = n.attrInt("group", 1);
    long m = tw.dim(0).size();
    long cg = tw.dim(1).size();
    if (group < 1 || m % group != 0 || (tx.dim(1).isKnown() && tx.dim(1).size() != cg * group)) {
      throw new MissingGradientException(n, "Conv with group " + group + " over input " + tx + " and weight " + tw
          + " is inconsistent");
    }
    List<@Nullable String> r = nulls(n);
    if (c.needs(0)) {
      r.set(0, c.op("ConvTranspose", List.of(gy, w),
          attr("kernel_shape", list(geo.kernel())), attr("strides", list(geo.strides())),
          attr("dilations", list(geo.dilations())), attr("pads", geo.pads()), attr("group", group),
          attr("output_padding", geo.outputPadding())));
    }
    if (c.needs(1)) {
      long h = geo.in()[0];
      long wd = geo.in()[1];
      // X → [C/group, group·N, H, W] with channel (g, n) = X[n, g·C/group + c].
      String xt;
      if (group == 1) {
        xt = c.op("Transpose", List.of(x), attr("perm", List.of(1L, 0L, 2L, 3L)));
      } else {
        String split = c.op("Reshape", List.of(x, c.longs(List.of(0L, group, cg, h, wd))));
        String moved = c.op("Transpose", List.of(split), attr("perm", List.of(2L, 1L, 0L, 3L, 4L)));
        xt = c.op("Reshape", List.of(moved, c.longs(List.of(cg, -1L, h, wd))));
      }
      String gt = c.op("Transpose", List.of(gy), attr("perm", List.of(1L, 0L, 2L, 3L)));
      // The kernel is the gradient [M, N, OH, OW]: strides and dilations trade places.
      String dw = c.op("Conv", List.of(xt, gt), attr("strides", list(geo.dilations())),
          attr("dilations", list(geo.strides())), attr("pads", geo.pads()), attr("group", group));
      long[] full = new long[2];
      for (int i = 0; i < 2; i++) {
        full[i] = (geo.in()[i] + geo.padsBegin()[i] + geo.padsEnd()[i] - geo.strides()[i] * (geo.out()[i] - 1) - 1)
            / geo.dilations()[i] + 1;
      }
      if (full[0] != geo.kernel()[0] || full[1] != geo.kernel()[1]) {
        dw = c.op("Slice", List.of(dw, c.longs(List.of(0L, 0L)), c.longs(list(geo.kernel())), c.longs(List.of(2L, 3L))));
      }
      r.set(1, c.op("Transpose", List.of(dw), attr("perm", List.of(1L, 0L, 2L, 3L))));
    }
    if (c.needs(2)) {
      r.set(2, c.op("ReduceSum", List.of(gy, c.longs(List.of(0L, 2L, 3L))), attr("keepdims", 0L)));
    }
    return r;
  }

  // ---- Pools ----------------------------------------------------------------------------

  static List<@Nullable String> maxPool(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    List<Long> k = n.attrInts("kernel_shape");
    if (k == null || k.size() != 2) {
      throw new MissingGradientException(n, "MaxPool gradient supports 2-D kernels only, kernel_shape is " + k);
    }
    geometry(n, c, new long[] {k.get(0), k.get(1)});
    if (n.attrInt("storage_order", 0) != 0) {
      throw new MissingGradientException(n, "MaxPool with storage_order=1 (column-major indices) is not supported");
    }
    String indices = n.outputs().size() > 1 && !n.output(1).isEmpty() ? n.output(1)
        : c.ops("MaxPool", List.of(x), 2, n.attributes().values().toArray(new dev.graft.spec.onnx.Onnx.AttributeProto[0]))
            .get(1);
    // Indices are flat over the whole [N, C, H, W] input.
    String flat = c.longs(List.of(-1L));
    String zeros = c.op("Reshape", List.of(c.op("ConstantOfShape", List.of(c.shape(x)),
        attr("value", Tensors.floats("zero", c.type(x).elemType(), List.of(1L), new double[] {0}))), flat));
    String scattered = c.op("ScatterElements", List.of(zeros, c.op("Reshape", List.of(indices, flat)),
        c.op("Reshape", List.of(g.get(0), flat))), attr("axis", 0L), reductionAdd());
    List<@Nullable String> r = nulls(n);
    r.set(0, c.op("Reshape", List.of(scattered, c.shape(x))));
    return r;
  }

  private static dev.graft.spec.onnx.Onnx.AttributeProto reductionAdd() {
    return dev.graft.spec.onnx.Onnx.AttributeProto.newBuilder()
        .setName("reduction")
        .setType(dev.graft.spec.onnx.Onnx.AttributeProto.AttributeType.STRING)
        .setS(com.google.protobuf.ByteString.copyFromUtf8("add"))
        .build();
  }

  static List<@Nullable String> averagePool(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    List<Long> k = n.attrInts("kernel_shape");
    if (k == null || k.size() != 2) {
      throw new MissingGradientException(n, "AveragePool gradient supports 2-D kernels only, kernel_shape is " + k);
    }
    if (n.has("dilations")) {
      throw new MissingGradientException(n, "AveragePool with dilations (opset 19) is not supported");
    }
    ConvGeometry geo = geometry(n, c, new long[] {k.get(0), k.get(1)});
    boolean includePad = n.attrInt("count_include_pad", 0) == 1;
    long oh = geo.out()[0];
    long ow = geo.out()[1];
    double[] inverse = new double[(int) (oh * ow)];
    for (int i = 0; i < oh; i++) {
      for (int j = 0; j < ow; j++) {
        long rows = includePad ? k.get(0) : covered(i, geo, 0);
        long cols = includePad ? k.get(1) : covered(j, geo, 1);
        inverse[(int) (i * ow + j)] = 1.0 / (rows * cols);
      }
    }
    int elem = c.type(x).elemType();
    String scaled = c.mul(g.get(0), c.op("Constant", List.of(),
        attr("value", Tensors.floats("inverse_count", elem, List.of(oh, ow), inverse))));
    String perChannel = c.op("Reshape", List.of(scaled, c.longs(List.of(-1L, 1L, oh, ow))));
    double[] ones = new double[(int) (k.get(0) * k.get(1))];
    java.util.Arrays.fill(ones, 1.0);
    String kernel = c.op("Constant", List.of(),
        attr("value", Tensors.floats("ones", elem, List.of(1L, 1L, k.get(0), k.get(1)), ones)));
    String spread = c.op("ConvTranspose", List.of(perChannel, kernel), attr("kernel_shape", k),
        attr("strides", list(geo.strides())), attr("pads", geo.pads()), attr("output_padding", geo.outputPadding()));
    List<@Nullable String> r = nulls(n);
    r.set(0, c.op("Reshape", List.of(spread, c.shape(x))));
    return r;
  }

  /** How many of the rows (axis 0) or columns (axis 1) of window {@code o} lie inside the input. */
  private static long covered(long o, ConvGeometry geo, int axis) {
    long start = o * geo.strides()[axis] - geo.padsBegin()[axis];
    long end = start + geo.kernel()[axis];
    return Math.min(end, geo.in()[axis]) - Math.max(start, 0);
  }

  static List<@Nullable String> globalAveragePool(Node n, List<@Nullable String> g, Grad c) {
    String x = n.input(0);
    TensorType tx = c.type(x);
    if (!tx.hasRank() || tx.rank() < 3) {
      throw new MissingGradientException(n, "GlobalAveragePool needs an [N, C, spatial...] input, got " + tx);
    }
    Dim count = Dim.of(1);
    for (int i = 2; i < tx.rank(); i++) {
      count = count.times(tx.dim(i));
    }
    String divisor = count.isKnown() ? c.scalar(count.size(), x)
        : c.op("Cast", List.of(c.op("Div", List.of(c.op("Size", List.of(x)), c.op("Size", List.of(n.output(0)))))),
            attr("to", (long) tx.elemType()));
    List<@Nullable String> r = nulls(n);
    r.set(0, c.op("Expand", List.of(c.op("Div", List.of(g.get(0), divisor)), c.shape(x))));
    return r;
  }

  // ---- BatchNormalization (inference) -----------------------------------------------------

  /**
   * {@code y = scale·(x − mean)/√(var + ε) + B} per channel (axis 1) with the running
   * statistics as given: training mode (batch statistics, running-stat outputs) is rejected.
   */
  static List<@Nullable String> batchNormalization(Node n, List<@Nullable String> g, Grad c) {
    if (n.attrInt("training_mode", 0) != 0 || n.outputs().stream().skip(1).anyMatch(o -> !o.isEmpty())) {
      throw new MissingGradientException(n,
          "BatchNormalization in training mode (batch statistics) has no gradient rule; only inference mode is supported");
    }
    String x = n.input(0);
    TensorType tx = c.type(x);
    if (!tx.hasRank() || tx.rank() < 2) {
      throw new MissingGradientException(n, "BatchNormalization needs an [N, C, ...] input, got " + tx);
    }
    int rank = tx.rank();
    List<Long> reduce = new ArrayList<>();
    List<Long> trailing = new ArrayList<>();
    reduce.add(0L);
    for (long i = 2; i < rank; i++) {
      reduce.add(i);
      trailing.add(i - 1);
    }
    String gy = g.get(0);
    String scale = n.input(1);
    String var = n.input(4);
    String inv = c.op("Reciprocal", List.of(c.op("Sqrt", List.of(
        c.op("Add", List.of(var, c.scalar(n.attrFloat("epsilon", 1e-5f), var)))))));
    String axes = c.longs(reduce);
    List<@Nullable String> r = nulls(n);
    if (c.needs(0)) {
      r.set(0, c.mul(gy, perChannel(c, c.mul(scale, inv), trailing)));
    }
    String centered = c.needs(1) || c.needs(4)
        ? c.op("Sub", List.of(x, perChannel(c, n.input(3), trailing))) : "";
    if (c.needs(1)) {
      String xhat = c.mul(centered, perChannel(c, inv, trailing));
      r.set(1, c.op("ReduceSum", List.of(c.mul(gy, xhat), axes), attr("keepdims", 0L)));
    }
    String sumG = c.needs(2) || c.needs(3)
        ? c.op("ReduceSum", List.of(gy, axes), attr("keepdims", 0L)) : "";
    if (c.needs(2)) {
      r.set(2, sumG);
    }
    if (c.needs(3)) {
      r.set(3, c.neg(c.mul(sumG, c.mul(scale, inv))));
    }
    if (c.needs(4)) {
      // d/dvar (var + ε)^(-1/2) = −½·inv³
      String sumGc = c.op("ReduceSum", List.of(c.mul(gy, centered), axes), attr("keepdims", 0L));
      String inv3 = c.mul(inv, c.mul(inv, inv));
      r.set(4, c.mul(sumGc, c.mul(scale, c.mul(inv3, c.scalar(-0.5, var)))));
    }
    return r;
  }

  /** A per-channel [C] vector as [C, 1, …] so it broadcasts over [N, C, spatial…]. */
  private static String perChannel(Grad c, String v, List<Long> trailing) {
    return trailing.isEmpty() ? v : c.op("Unsqueeze", List.of(v, c.longs(trailing)));
  }
}
