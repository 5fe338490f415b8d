package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A linear site: a MatMul whose second operand is a 2-D host weight {@code [in, out]}, or a Gemm
 * whose B is a 2-D host weight ({@code [in, out]}, or {@code [out, in]} with {@code transB=1}
 * as torch exports {@code nn.Linear}).
 *
 * @param node the host node name, e.g. {@code /encoder/layer.0/attention/self/query/MatMul}
 * @param modulePath the module path PEFT uses, e.g. {@code encoder.layer.0.attention.self.query}
 * @param layer the layer index found in the name ({@code layer.N}, {@code layers.N}, {@code h.N},
 *     {@code block.N}), if any
 */
public record LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out)
    implements Site {
  private static final Pattern LAYER =
      Pattern.compile("(?:^|[/.])(?:layer|layers|h|block|blocks)[._](\\d+)(?=[/.]|$)");

  /** Every linear site of the graph, in graph order. */
  public static List<LinearSite> find(Graph graph) {
    List<LinearSite> sites = new ArrayList<>();
    for (Node n : graph.nodes()) {
      boolean gemm = n.opType().equals("Gemm");
      if (!(n.opType().equals("MatMul") || gemm) || !n.domain().isEmpty()) {
        continue;
      }
      TensorProto w = graph.initializers().get(n.input(1));
      if (w == null || w.getDimsCount() != 2) {
        continue;
      }
      boolean transposed = gemm && n.attrInt("transB", 0) == 1;
      sites.add(new LinearSite(n.name(), modulePath(n.name()), layerOf(n.name()), n.input(1),
          w.getDims(transposed ? 1 : 0), w.getDims(transposed ? 0 : 1)));
    }
    return sites;
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
