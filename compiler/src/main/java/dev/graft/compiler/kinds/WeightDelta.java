package dev.graft.compiler.kinds;

import dev.graft.compiler.kinds.lora.LoraKind;

import dev.graft.compiler.ir.Graph;
import java.util.List;

/**
 * Graph pieces of adapters that build a weight update {@code ΔW [in, out]} from small factors
 * and add {@code s · x·ΔW} to a linear site (LoKr, LoHa). Every op used has a gradient rule.
 */
public final class WeightDelta {
  private WeightDelta() {}

  /**
   * The Kronecker product {@code a ⊗ b} of {@code a [p, q]} and {@code b [r, s]}: the {@code [p·r,
   * q·s]} matrix whose element {@code (i·r + k, j·s + l)} is {@code a[i, j] · b[k, l]}. Built as
   * {@code Reshape(Unsqueeze(a, [1, 3]) · Unsqueeze(b, [0, 2]))}: a {@code [p, 1, q, 1]} times
   * {@code [1, r, 1, s]} broadcast to {@code [p, r, q, s]}, which row-major is the product.
   */
  public static String kronecker(Graph g, String base, String a, long[] aShape, String b, long[] bShape) {
    String a4 = g.op(base + "/kron/Unsqueeze_1", "Unsqueeze", List.of(a, g.longs(base + "/kron/axes_1", List.of(1L, 3L))));
    String b4 = g.op(base + "/kron/Unsqueeze_2", "Unsqueeze", List.of(b, g.longs(base + "/kron/axes_2", List.of(0L, 2L))));
    String outer = g.op(base + "/kron/Mul", "Mul", List.of(a4, b4));
    String shape = g.longs(base + "/kron/shape", List.of(aShape[0] * bShape[0], aShape[1] * bShape[1]));
    return g.op(base + "/kron/Reshape", "Reshape", List.of(outer, shape));
  }

  /**
   * Adds {@code scale · input·delta} to the site's output (before its bias), where {@code input}
   * is the adapter's view of the site's x (see {@link LoraKind#input}) and {@code delta} the
   * update {@code [in, out]}; the site's Gemm alpha is applied as for LoRA.
   */
  public static void apply(Placement placement, LinearSite site, LoraKind.Input in, String delta, double scale) {
    String update = placement.graph().op(in.base() + "/MatMul_delta", "MatMul", List.of(in.value(), delta));
    LoraKind.addToOutput(placement, site, in.base(), update, scale * in.outputScale());
  }
}
