package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.List;

/**
 * The weight a quantized adapter's forward pass reads (Jie et al., "Revisiting the Parameter
 * Efficiency of Adapters from the Perspective of Precision Redundancy", ICCV 2023, reference code
 * {@code binary_adapter/utils.py}, {@code QLinear}): a parameter tensor {@code w} standardized by
 * its mean μ and sample standard deviation σ, {@code z = (w − μ)/(σ + ε)}, rounded to the nearest
 * of the {@link LloydMax} levels of N(0, 1) at b bits and mapped back, {@code q = μ + σ·Q(z)}.
 *
 * <p>μ and σ are not computed in the graph: they are the two values of a frozen companion
 * parameter {@code <w>}{@value #STATS_SUFFIX} that the run time keeps (recomputed from {@code w}
 * after every step, restored exactly by a bit-packed load). So {@code q} is a function of the codes
 * and of the stored μ, σ alone, and a model reloaded from its codes and μ, σ reads the same
 * {@code q}, bit for bit.
 *
 * <p>The straight-through form is {@code q_st = stopGradient(q) + (w − stopGradient(w))}: forward
 * exactly {@code q} ({@code w − w} is 0), backward {@code dL/dw = dL/dq}.
 */
public final class QuantizedWeights {
  /** The suffix of the companion parameter that holds {@code [μ, σ]}. */
  public static final String STATS_SUFFIX = ".quant_stats";
  /** Added to σ where {@code w} is standardized (the reference code's {@code std_w + 1e-5}). */
  public static final double EPSILON = 1e-5;

  private QuantizedWeights() {}

  /**
   * Appends the straight-through quantizer of parameter {@code w} (shape {@code shape}, element
   * type {@code elemType}) at {@code bits}, with {@code [μ, σ]} read from input {@code stats};
   * returns the value the adapter reads in its place.
   */
  public static String straightThrough(Graph g, String w, String stats, long[] shape, int bits, int elemType) {
    String q = quantized(g, w, stats, bits, elemType);
    return g.op(w + "/quant/Add_st", "Add", List.of(g.stopGradient(w + "/quant/StopGradient_q", q),
        g.op(w + "/quant/Sub_st", "Sub", List.of(w, g.stopGradient(w + "/quant/StopGradient_w", w)))));
  }

  /** {@code μ + σ·Q((w − μ)/(σ + ε))} of {@code w}, μ and σ the two values of {@code stats}. */
  static String quantized(Graph g, String w, String stats, int bits, int elemType) {
    String base = w + "/quant";
    String mean = g.op(base + "/mean", "Gather", List.of(stats, g.longs(base + "/index_mean", List.of(0L))),
        Node.attr("axis", 0L));
    String std = g.op(base + "/std", "Gather", List.of(stats, g.longs(base + "/index_std", List.of(1L))),
        Node.attr("axis", 0L));
    String denominator = g.op(base + "/Add_eps", "Add", List.of(std, g.scalar(base + "/eps", elemType, EPSILON)));
    String standardized = g.op(base + "/Div", "Div", List.of(g.op(base + "/Sub", "Sub", List.of(w, mean)), denominator));
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
