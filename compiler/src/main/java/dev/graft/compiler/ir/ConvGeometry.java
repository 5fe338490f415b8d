package dev.graft.compiler.ir;

import java.util.ArrayList;
import java.util.List;

/**
 * The resolved window geometry of a 2-D Conv or pooling node over an input with known spatial
 * size: kernel, strides, dilations and explicit begin/end pads ({@code auto_pad} VALID,
 * SAME_UPPER and SAME_LOWER are turned into explicit pads), and the output spatial size
 * {@code out = floor((in + begin + end - ((k - 1)·d + 1)) / s) + 1}. Shared by shape inference
 * and the gradient rules so both see the same numbers.
 *
 * @param in input spatial size (H, W)
 * @param out output spatial size (OH, OW)
 */
public record ConvGeometry(
    long[] in, long[] kernel, long[] strides, long[] dilations, long[] padsBegin, long[] padsEnd, long[] out) {

  /**
   * Resolves the geometry of {@code n} over {@code x} (rank 4, known H and W) with the given
   * kernel size. Rejects what the CNN rules do not support: other ranks, {@code ceil_mode=1},
   * {@code auto_pad} together with {@code pads}, unknown {@code auto_pad} values, empty outputs.
   *
   * @throws IllegalArgumentException naming the node and the unsupported attribute
   */
  public static ConvGeometry of(Node n, TensorType x, long[] kernel) {
    String where = n.opType() + " node '" + n.name() + "'";
    if (!x.hasRank() || x.rank() != 4) {
      throw new IllegalArgumentException(where + ": only 2-D windows over [N, C, H, W] inputs are supported, input is " + x);
    }
    if (!x.dim(2).isKnown() || !x.dim(3).isKnown()) {
      throw new IllegalArgumentException(where + ": spatial dims must be fixed, input is " + x);
    }
    if (n.attrInt("ceil_mode", 0) != 0) {
      throw new IllegalArgumentException(where + ": ceil_mode=1 is not supported");
    }
    long[] in = {x.dim(2).size(), x.dim(3).size()};
    long[] strides = ints(n, "strides", 1);
    long[] dilations = ints(n, "dilations", 1);
    List<Long> kshape = n.attrInts("kernel_shape");
    if (kshape != null && (kshape.size() != 2 || kshape.get(0) != kernel[0] || kshape.get(1) != kernel[1])) {
      throw new IllegalArgumentException(where + ": kernel_shape " + kshape + " does not match the weight's "
          + kernel[0] + "x" + kernel[1]);
    }
    String autoPad = n.attrString("auto_pad");
    autoPad = autoPad == null || autoPad.isEmpty() ? "NOTSET" : autoPad;
    long[] begin = new long[2];
    long[] end = new long[2];
    if (autoPad.equals("NOTSET")) {
      List<Long> pads = n.attrInts("pads");
      if (pads != null) {
        if (pads.size() != 4) {
          throw new IllegalArgumentException(where + ": pads must have 4 values, got " + pads);
        }
        begin = new long[] {pads.get(0), pads.get(1)};
        end = new long[] {pads.get(2), pads.get(3)};
      }
    } else {
      if (n.has("pads")) {
        throw new IllegalArgumentException(where + ": auto_pad " + autoPad + " together with explicit pads");
      }
      if (!List.of("VALID", "SAME_UPPER", "SAME_LOWER").contains(autoPad)) {
        throw new IllegalArgumentException(where + ": unknown auto_pad " + autoPad);
      }
      if (!autoPad.equals("VALID")) {
        for (int i = 0; i < 2; i++) {
          long o = (in[i] + strides[i] - 1) / strides[i];
          long total = Math.max(0, (o - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in[i]);
          begin[i] = autoPad.equals("SAME_UPPER") ? total / 2 : total - total / 2;
          end[i] = total - begin[i];
        }
      }
    }
    long[] out = new long[2];
    for (int i = 0; i < 2; i++) {
      if (strides[i] < 1 || dilations[i] < 1 || kernel[i] < 1 || begin[i] < 0 || end[i] < 0) {
        throw new IllegalArgumentException(where + ": kernel, strides and dilations must be positive, pads not negative");
      }
      long span = in[i] + begin[i] + end[i] - ((kernel[i] - 1) * dilations[i] + 1);
      if (span < 0) {
        throw new IllegalArgumentException(where + ": window larger than the padded input " + x);
      }
      out[i] = span / strides[i] + 1;
    }
    return new ConvGeometry(in, kernel, strides, dilations, begin, end, out);
  }

  /** ConvTranspose (as the Conv and AveragePool gradients emit it: explicit pads, no output_shape). */
  private static TensorType convTranspose(Node n, TensorType x, TensorType w) {
    List<Dim> s = new ArrayList<>(x.dims());
    boolean known = w.hasRank() && w.rank() == 4 && x.rank() == 4 && !n.has("output_shape") && !n.has("auto_pad");
    if (s.size() > 1) {
      s.set(1, known ? w.dim(1).times(Dim.of(n.attrInt("group", 1))) : Dim.unknown());
    }
    for (int i = 0; i < 2 && i + 2 < s.size(); i++) {
      Dim in = x.dim(i + 2);
      Dim k = known ? w.dim(i + 2) : Dim.unknown();
      if (!in.isKnown() || !k.isKnown()) {
        s.set(i + 2, Dim.unknown());
        continue;
      }
      long stride = at(n, "strides", i, 1);
      long dilation = at(n, "dilations", i, 1);
      long out = stride * (in.size() - 1) + at(n, "output_padding", i, 0) + (k.size() - 1) * dilation + 1
          - at(n, "pads", i, 0) - at(n, "pads", i + 2, 0);
      s.set(i + 2, Dim.of(out));
    }
    return TensorType.of(x.elemType(), s);
  }

  private static long at(Node n, String name, int i, long fallback) {
    List<Long> v = n.attrInts(name);
    return v == null || v.size() <= i ? fallback : v.get(i);
  }

  private static long[] ints(Node n, String name, long fallback) {
    List<Long> v = n.attrInts(name);
    if (v == null) {
      return new long[] {fallback, fallback};
    }
    if (v.size() != 2) {
      throw new IllegalArgumentException(n.opType() + " node '" + n.name() + "': " + name + " must have 2 values, got " + v);
    }
    return new long[] {v.get(0), v.get(1)};
  }

  /** Pads in ONNX order: begins, then ends. */
  public List<Long> pads() {
    return List.of(padsBegin[0], padsBegin[1], padsEnd[0], padsEnd[1]);
  }

  /**
   * {@code output_padding} of the ConvTranspose that maps an {@code out}-sized gradient back to
   * exactly {@code in}: the input rows past the last window (0 ≤ value &lt; stride).
   */
  public List<Long> outputPadding() {
    List<Long> p = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      p.add(in[i] - ((out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - padsBegin[i] - padsEnd[i]));
    }
    return p;
  }

  /**
   * Shape inference of the CNN ops (Conv, MaxPool, AveragePool, GlobalAveragePool,
   * BatchNormalization); spatial dims are unknown where the geometry cannot be resolved.
   */
  static TensorType infer(Node n, List<TensorType> inputs) {
    TensorType x = inputs.get(0);
    if (!x.hasRank()) {
      return x;
    }
    switch (n.opType()) {
      case "BatchNormalization":
        return x;
      case "ConvTranspose":
        return convTranspose(n, x, inputs.size() > 1 ? inputs.get(1) : new TensorType(0, null));
      case "GlobalAveragePool": {
        List<Dim> s = new ArrayList<>(x.dims());
        for (int i = 2; i < s.size(); i++) {
          s.set(i, Dim.of(1));
        }
        return TensorType.of(x.elemType(), s);
      }
      default:
        break;
    }
    Dim channels = x.rank() > 1 ? x.dim(1) : Dim.unknown();
    long[] kernel = null;
    if (n.opType().equals("Conv")) {
      TensorType w = inputs.size() > 1 ? inputs.get(1) : new TensorType(0, null);
      channels = w.hasRank() ? w.dim(0) : Dim.unknown();
      if (w.hasRank() && w.rank() == 4 && w.dim(2).isKnown() && w.dim(3).isKnown()) {
        kernel = new long[] {w.dim(2).size(), w.dim(3).size()};
      }
    } else {
      List<Long> k = n.attrInts("kernel_shape");
      if (k != null && k.size() == 2) {
        kernel = new long[] {k.get(0), k.get(1)};
      }
    }
    List<Dim> s = new ArrayList<>(x.dims());
    if (s.size() > 1) {
      s.set(1, channels);
    }
    try {
      if (kernel == null) {
        throw new IllegalArgumentException("kernel unknown");
      }
      ConvGeometry geo = of(n, x, kernel);
      s.set(2, Dim.of(geo.out()[0]));
      s.set(3, Dim.of(geo.out()[1]));
    } catch (IllegalArgumentException e) {
      for (int i = 2; i < s.size(); i++) {
        s.set(i, Dim.unknown());
      }
    }
    return TensorType.of(x.elemType(), s);
  }
}
