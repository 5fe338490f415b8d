package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.FusedOps;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Gradient rules of LayerNormalization and SimplifiedLayerNormalization (BatchNormalization, inference mode, is in {@link
 * ConvGradients}).
 */
final class NormalizationGradients {
  private NormalizationGradients() {}

  /**
   * LayerNormalization over axes {@code [axis, rank)}: with x̂ = (x − mean)·invstd and
   * ĝ = g·scale, dx = invstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), dscale = Σ g·x̂, dB = Σ g. Uses
   * the node's Mean/InvStdDev outputs when present in the input's precision, else recomputes them.
   * Nine passes over x's shape for dx (the rest are per-row values); over the last axis of a
   * float32 input with its statistics outputs and a 1-D scale, dx is one fused {@code
   * dev.graft:LayerNormGrad} ({@link FusedOps}) instead.
   */
  static List<@Nullable String> layerNorm(Node n, List<@Nullable String> g, Grad c) {
    for (int k = 1; k < g.size(); k++) {
      if (g.get(k) != null) {
        throw new MissingGradientException(n, "only output Y of LayerNormalization can carry a gradient "
            + "(Mean and InvStdDev feed the loss here)");
      }
    }
    String x = n.input(0);
    TensorType tx = c.type(x);
    if (!tx.hasRank()) {
      throw new MissingGradientException(n, "LayerNormalization gradient needs the input rank");
    }
    int rank = tx.rank();
    long axis = n.attrInt("axis", -1);
    List<Long> axes = new ArrayList<>();
    for (long i = axis < 0 ? axis + rank : axis; i < rank; i++) {
      axes.add(i);
    }
    String mean;
    String inv;
    boolean stats = n.outputs().size() > 2 && !n.output(1).isEmpty() && !n.output(2).isEmpty()
        && c.type(n.output(1)).elemType() == tx.elemType() && c.type(n.output(2)).elemType() == tx.elemType();
    if (stats) {
      mean = n.output(1);
      inv = n.output(2);
    } else {
      mean = c.op("ReduceMean", List.of(x), attr("axes", axes));
      String d = c.op("Sub", List.of(x, mean));
      String var = c.op("ReduceMean", List.of(c.mul(d, d)), attr("axes", axes));
      String eps = c.scalar(n.attrFloat("epsilon", 1e-5f), x);
      inv = c.op("Reciprocal", List.of(c.op("Sqrt", List.of(c.op("Add", List.of(var, eps))))));
    }
    String gy = g.get(0);
    TensorType out = c.type(n.output(0));
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null, null));
    TensorType scale = c.type(n.input(1));
    boolean fused = stats && tx.elemType() == TensorType.FLOAT && axes.size() == 1 && scale.hasRank()
        && scale.rank() == 1;
    String centred = c.needs(1) || c.needs(0) && !fused ? c.op("Sub", List.of(x, mean)) : "";
    if (c.needs(0) && fused) {
      // One dev.graft:LayerNormGrad (FusedOps) over the last axis, from the saved statistics.
      r.set(0, c.unbroadcast(c.fusedOp(FusedOps.LAYER_NORM_GRAD, List.of(gy, x, n.input(1), mean, inv)), out, x));
    } else if (c.needs(0)) {
      // x̂·mean(ĝ·x̂) = (x − mean)·invstd²·mean(ĝ·(x − mean)): the invstd factors are applied to the
      // per-row means, so x̂ itself is not computed for dx.
      String gh = c.mul(gy, n.input(1));
      String m1 = c.op("ReduceMean", List.of(gh), attr("axes", axes));
      String m2 = c.op("ReduceMean", List.of(c.mul(gh, centred)), attr("axes", axes));
      String k = c.mul(c.mul(inv, inv), m2);
      String dx = c.mul(c.op("Sub", List.of(c.op("Sub", List.of(gh, m1)), c.mul(centred, k))), inv);
      r.set(0, c.unbroadcast(dx, out, x));
    }
    if (c.needs(1)) {
      r.set(1, c.unbroadcast(c.mul(gy, c.mul(centred, inv)), out, n.input(1)));
    }
    if (c.needs(2)) {
      r.set(2, c.unbroadcast(gy, out, n.input(2)));
    }
    return r.subList(0, n.inputs().size());
  }

  /**
   * SimplifiedLayerNormalization (RMSNorm) over axes {@code [axis, rank)}: y = scale·x·r with
   * r = 1/√(mean(x²) + ε); with x̂ = x·r and ĝ = g·scale, dx = r·(ĝ − x̂·mean(ĝ·x̂)) and dscale
   * = Σ g·x̂. Uses the node's inv_std_var output (r) when present in the input's precision, else
   * recomputes it.
   */
  static List<@Nullable String> simplifiedLayerNorm(Node n, List<@Nullable String> g, Grad c) {
    if (g.size() > 1 && g.get(1) != null) {
      throw new MissingGradientException(n, "only output Y of SimplifiedLayerNormalization can carry a gradient "
          + "(inv_std_var feeds the loss here)");
    }
    String x = n.input(0);
    TensorType tx = c.type(x);
    if (!tx.hasRank()) {
      throw new MissingGradientException(n, "SimplifiedLayerNormalization gradient needs the input rank");
    }
    int rank = tx.rank();
    long axis = n.attrInt("axis", -1);
    List<Long> axes = new ArrayList<>();
    for (long i = axis < 0 ? axis + rank : axis; i < rank; i++) {
      axes.add(i);
    }
    String inv;
    if (n.outputs().size() > 1 && !n.output(1).isEmpty() && c.type(n.output(1)).elemType() == tx.elemType()) {
      inv = n.output(1);
    } else {
      String ms = c.op("ReduceMean", List.of(c.mul(x, x)), attr("axes", axes));
      String eps = c.scalar(n.attrFloat("epsilon", 1e-5f), x);
      inv = c.op("Reciprocal", List.of(c.op("Sqrt", List.of(c.op("Add", List.of(ms, eps))))));
    }
    String xhat = c.mul(x, inv);
    String gy = g.get(0);
    TensorType out = c.type(n.output(0));
    List<@Nullable String> r = new ArrayList<>(Arrays.asList(null, null));
    if (c.needs(0)) {
      String gh = c.mul(gy, n.input(1));
      String m = c.op("ReduceMean", List.of(c.mul(gh, xhat)), attr("axes", axes));
      r.set(0, c.unbroadcast(c.mul(inv, c.op("Sub", List.of(gh, c.mul(xhat, m)))), out, x));
    }
    if (c.needs(1)) {
      r.set(1, c.unbroadcast(c.mul(gy, xhat), out, n.input(1)));
    }
    return r;
  }
}
