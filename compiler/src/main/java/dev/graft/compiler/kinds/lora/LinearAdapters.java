package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Placement;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.List;

/**
 * Graph pieces every adapter beside a linear site {@code y = g·x·W} uses (the LoRA family and the
 * mixtures of LoRA experts): the input it reads (x, transposed for a Gemm with {@code transA=1},
 * after dropout in training), adding its scaled update to the site's output, and weight updates
 * built from small factors ({@code s · x·ΔW}, the Kronecker product). Every op used has a
 * gradient rule.
 */
public final class LinearAdapters {
  private LinearAdapters() {}

  /**
   * The input a linear-site adapter reads: the site's x (transposed for a Gemm with {@code
   * transA=1}), after dropout in the training graph when {@code dropout > 0}.
   *
   * @param base the node-name prefix of the adapter's nodes ({@code /<module path as a path>/<name>})
   * @param outputScale what the site multiplies its weight term by (a Gemm's alpha, else 1)
   */
  public record Input(String value, String base, double outputScale) {}

  /** The node-name prefix of an adapter's nodes at a site: {@code /<module path as a path>/<name>}. */
  public static String base(LinearSite site, String name) {
    return "/" + site.modulePath().replace('.', '/') + "/" + name;
  }

  /** The site's input for an adapter whose nodes are named under {@code /<module path>/<name>} (see {@link Input}). */
  public static Input input(LinearSite site, Placement placement, double dropout, String name) {
    Graph g = placement.graph();
    Node node = node(g, site);
    String x = site.input(g);
    String base = base(site, name);
    double outputScale = 1;
    if (node.opType().equals("Gemm")) {
      if (node.attrInt("transA", 0) == 1) {
        x = g.op(base + "/Transpose", "Transpose", List.of(x), Node.attr("perm", List.of(1L, 0L)));
      }
      outputScale = node.attrFloat("alpha", 1f);
    }
    if (placement.variant().trains() && dropout > 0) {
      String ratio = placement.scalar(base + "/dropout_ratio", dropout);
      String mode = g.constant(base + "/training_mode", dev.graft.spec.onnx.Onnx.TensorProto.newBuilder()
          .setDataType(TensorType.BOOL).setRawData(com.google.protobuf.ByteString.copyFrom(new byte[] {1})).build());
      x = g.add(base + "/Dropout", "Dropout", "", List.of(x, ratio, mode), 2, Node.attrs()).get(0);
    }
    return new Input(x, base, outputScale);
  }

  /** Adds {@code scale · update} to the site's output (before its bias) and rewires the site's consumers. */
  public static void addToOutput(Placement placement, LinearSite site, String base, String update, double scale) {
    Graph g = placement.graph();
    String y = site.output(g);
    String scaled = scale == 1 ? update : g.op(base + "/Mul", "Mul", List.of(update, placement.scalar(base + "/scaling", scale)));
    g.add(base + "/Add", "Add", "", List.of(y, scaled), 1, Node.attrs());
    Node add = g.nodes().get(g.nodes().size() - 1);
    g.replaceUses(y, add.output(0), List.of(add));
  }

  /**
   * Adds {@code scale · input·delta} to the site's output (before its bias), where {@code delta}
   * is the update {@code [in, out]}; the site's Gemm alpha is applied as for LoRA.
   */
  public static void addWeightUpdate(Placement placement, LinearSite site, Input in, String delta, double scale) {
    String update = placement.graph().op(in.base() + "/MatMul_delta", "MatMul", List.of(in.value(), delta));
    addToOutput(placement, site, in.base(), update, scale * in.outputScale());
  }

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

  /** {@code value · scale} as a node named {@code <prefix>/Mul}, or {@code value} itself when the scale is 1. */
  public static String scaled(Graph g, int elemType, String prefix, String value, double scale) {
    return scale == 1 ? value : g.op(prefix + "/Mul", "Mul", List.of(value, g.scalar(prefix + "/scaling", elemType, scale)));
  }

  /** The host weight as {@code [in, out]}: transposed where the site stores it {@code [out, in]} ({@link LinearSite#outFirst}). */
  public static String weightInOut(Graph g, LinearSite site, String weight, String base) {
    return site.outFirst()
        ? g.op(base + "/Transpose_W", "Transpose", List.of(weight), Node.attr("perm", List.of(1L, 0L)))
        : weight;
  }

  /** The host node of a linear site. */
  public static Node node(Graph graph, LinearSite site) {
    return graph.nodes().stream().filter(n -> n.name().equals(site.node())).findFirst().orElseThrow();
  }
}
