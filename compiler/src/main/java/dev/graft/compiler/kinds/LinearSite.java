package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * A linear site: a MatMul whose second operand is a 2-D host weight {@code [in, out]}, or a Gemm
 * whose B is a 2-D host weight ({@code [in, out]}, or {@code [out, in]} with {@code transB=1}
 * as torch exports {@code nn.Linear}), or a MatMul whose second operand is a {@code Transpose}
 * of a 2-D host weight {@code [out, in]} (a tied LM head {@code MatMul(h, Transpose(wte))} as
 * torch exports it without constant folding: the weight is the embedding table itself, so
 * adapters run beside it and a merged export gives the head a weight of its own).
 *
 * @param node the host node name, e.g. {@code /encoder/layer.0/attention/self/query/MatMul}
 * @param modulePath the module path PEFT uses, e.g. {@code encoder.layer.0.attention.self.query}
 * @param layer the layer index found in the name ({@code layer.N}, {@code layers.N}, {@code h.N},
 *     {@code block.N}), if any
 * @param weight the host initializer the site multiplies by
 * @param outFirst whether {@code weight} is stored {@code [out, in]}: a Gemm with {@code transB=1},
 *     or a MatMul reading it through a Transpose
 */
public record LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out,
    boolean outFirst) implements Site {
  private static final Pattern LAYER =
      Pattern.compile("(?:^|[/.])(?:layer|layers|h|block|blocks)[._](\\d+)(?=[/.]|$)");

  /** Every linear site of the graph, in graph order. */
  public static List<LinearSite> find(Graph graph) {
    List<LinearSite> sites = new ArrayList<>();
    for (Node n : graph.nodes()) {
      LinearSite site = at(graph, n);
      if (site != null) {
        sites.add(site);
      }
    }
    return sites;
  }

  /** The linear site node {@code n} of {@code graph} is, or null when it is none. */
  public static @Nullable LinearSite at(Graph graph, Node n) {
    boolean gemm = n.opType().equals("Gemm");
    if (!(n.opType().equals("MatMul") || gemm) || !n.domain().isEmpty() || n.inputs().size() < 2) {
      return null;
    }
    String weight = n.input(1);
    boolean transposed = gemm && n.attrInt("transB", 0) == 1;
    Node transpose = gemm ? null : transposedWeight(graph, weight);
    if (transpose != null) {
      weight = transpose.input(0);
      transposed = true;
    }
    TensorProto w = graph.initializers().get(weight);
    if (w == null || w.getDimsCount() != 2) {
      return null;
    }
    return new LinearSite(n.name(), modulePath(n.name()), layerOf(n.name()), weight,
        w.getDims(transposed ? 1 : 0), w.getDims(transposed ? 0 : 1), transposed);
  }

  /**
   * The {@code Transpose} (perm {@code [1, 0]}, or none: the reverse) of a 2-D host initializer
   * that produces {@code value}, or null.
   */
  private static @Nullable Node transposedWeight(Graph graph, String value) {
    Node t = graph.producer(value);
    if (t == null || !t.opType().equals("Transpose") || !t.domain().isEmpty() || t.inputs().size() != 1) {
      return null;
    }
    TensorProto w = graph.initializers().get(t.input(0));
    List<Long> perm = t.attrInts("perm");
    return w != null && w.getDimsCount() == 2 && (perm == null || perm.equals(List.of(1L, 0L))) ? t : null;
  }

  /** {@code /encoder/layer.0/attention/self/query/MatMul} → {@code encoder.layer.0.attention.self.query}. */
  public static String modulePath(String nodeName) {
    String s = nodeName.startsWith("/") ? nodeName.substring(1) : nodeName;
    int slash = s.lastIndexOf('/');
    if (slash > 0) {
      s = s.substring(0, slash);
    }
    return s.replace('/', '.');
  }

  public static OptionalInt layerOf(String nodeName) {
    Matcher m = LAYER.matcher(nodeName);
    return m.find() ? OptionalInt.of(Integer.parseInt(m.group(1))) : OptionalInt.empty();
  }

  /**
   * The value the layer outputs: the site's output, or the output of the {@code Add} right after
   * it when that adds a 1-D host bias (torch exports {@code nn.Linear} as MatMul + Add).
   */
  public String biasedOutput(Graph graph) {
    Node n = graph.nodes().stream().filter(x -> x.name().equals(node)).findFirst().orElseThrow();
    String y = n.output(0);
    List<Node> users = graph.nodes().stream().filter(x -> x.inputs().contains(y)).toList();
    if (users.size() == 1 && users.get(0).opType().equals("Add") && users.get(0).inputs().size() == 2) {
      Node add = users.get(0);
      String other = add.input(0).equals(y) ? add.input(1) : add.input(0);
      TensorProto b = graph.initializers().get(other);
      if (b != null && b.getDimsCount() == 1 && b.getDims(0) == out) {
        return add.output(0);
      }
    }
    return y;
  }

  /** The host's 1-D bias added right after the site, if there is one (see {@link #biasedOutput}). */
  public java.util.Optional<String> bias(Graph graph) {
    String y = graph.nodes().stream().filter(x -> x.name().equals(node)).findFirst().orElseThrow().output(0);
    String out = biasedOutput(graph);
    if (out.equals(y)) {
      return java.util.Optional.empty();
    }
    Node add = graph.producer(out);
    return java.util.Optional.of(add.input(0).equals(y) ? add.input(1) : add.input(0));
  }
}
