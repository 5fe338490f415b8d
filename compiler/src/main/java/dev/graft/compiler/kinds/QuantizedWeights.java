package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.List;

/**
 * The weight a quantized adapter's forward pass reads (Jie et al., "Revisiting the Parameter
 * Efficiency of Adapters from the Perspective of Precision Redundancy", ICCV 2023): a parameter
 * tensor {@code w} standardized by its own mean μ and population standard deviation σ, rounded to
 * the nearest of the {@link LloydMax} levels of N(0, 1) at b bits and mapped back, {@code q = μ +
 * σ·Q((w − μ)/σ)}, with the straight-through gradient {@code q_st = w + stopGradient(q − w)}:
 * forward {@code q}, backward {@code dL/dw = dL/dq}.
 *
 * <p>A tensor of equal values (σ = 0, e.g. LoRA's zero-initialized B) reads {@code q = μ}: its
 * standardized value is NaN, no threshold is exceeded, and σ·level is 0.
 */
public final class QuantizedWeights {
  private QuantizedWeights() {}

  /**
   * Appends the straight-through quantizer of parameter {@code w} (shape {@code shape}, element
   * type {@code elemType}) at {@code bits}; returns the value the adapter reads in its place.
   */
  public static String straightThrough(Graph g, String w, long[] shape, int bits, int elemType) {
    return g.op(w + "/quant/Add_st", "Add", List.of(w, g.stopGradient(w + "/quant/StopGradient",
        g.op(w + "/quant/Sub_st", "Sub", List.of(quantized(g, w, shape, bits, elemType), w)))));
  }

  /** {@code μ + σ·Q((w − μ)/σ)} of {@code w}, shape {@code shape}. */
  static String quantized(Graph g, String w, long[] shape, int bits, int elemType) {
    String base = w + "/quant";
    List<Long> all = new java.util.ArrayList<>();
    for (int i = 0; i < shape.length; i++) {
      all.add((long) i);
    }
    String mean = g.op(base + "/ReduceMean", "ReduceMean", List.of(w), Node.attr("axes", all), Node.attr("keepdims", 1L));
    String centred = g.op(base + "/Sub", "Sub", List.of(w, mean));
    String variance = g.op(base + "/ReduceMean_var", "ReduceMean", List.of(g.op(base + "/Mul", "Mul",
        List.of(centred, centred))), Node.attr("axes", all), Node.attr("keepdims", 1L));
    String std = g.op(base + "/Sqrt", "Sqrt", List.of(variance));
    String standardized = g.op(base + "/Div", "Div", List.of(centred, std));
    double[] t = LloydMax.thresholds(bits);
    double[] levels = LloydMax.levels(bits);
    String thresholds = g.constant(base + "/thresholds", Tensors.floats(base + "/thresholds", elemType,
        List.of((long) t.length), t));
    String table = g.constant(base + "/levels", Tensors.floats(base + "/levels", elemType,
        List.of((long) levels.length), levels));
    // The code: how many thresholds the standardized value exceeds.
    String above = g.op(base + "/Greater", "Greater", List.of(
        g.op(base + "/Unsqueeze", "Unsqueeze", List.of(standardized, g.longs(base + "/last", List.of(-1L)))),
        thresholds));
    String code = g.op(base + "/ReduceSum", "ReduceSum", List.of(
        g.op(base + "/Cast", "Cast", List.of(above), Node.attr("to", (long) TensorType.INT64)),
        g.longs(base + "/axis", List.of(-1L))), Node.attr("keepdims", 0L));
    String level = g.op(base + "/Gather", "Gather", List.of(table, code), Node.attr("axis", 0L));
    return g.op(base + "/Add", "Add", List.of(mean, g.op(base + "/Mul_std", "Mul", List.of(std, level))));
  }
}
