package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.QuantizedMatMul;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * A linear site: a MatMul whose second operand is a 2-D host weight {@code [in, out]}, a Gemm
 * whose B is a 2-D host weight ({@code [in, out]}, or {@code [out, in]} with {@code transB=1}
 * as torch exports {@code nn.Linear}), or an int8 linear layer ({@link QuantizedMatMul}: the
 * site's node is its {@code MatMulInteger}, its weight the int8 {@code [in, out]} initializer,
 * its input the float x before the activation's quantization and its output the float y after
 * the scales). Adapters read {@link #input} and add to {@link #output}, so they need not know
 * which it is; a kind that needs the dense host weight refuses int8 sites ({@link #int8}).
 *
 * @param node the host node name, e.g. {@code /encoder/layer.0/attention/self/query/MatMul}
 * @param modulePath the module path PEFT uses, e.g. {@code encoder.layer.0.attention.self.query}
 * @param layer the layer index found in the name ({@code layer.N}, {@code layers.N}, {@code h.N},
 *     {@code block.N}), if any
 * @param int8 the int8 layer, where the site is one; null for a float MatMul or Gemm
 */
public record LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out,
    @Nullable QuantizedMatMul int8) implements Site {
  /** A float MatMul or Gemm site. */
  public LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out) {
    this(node, modulePath, layer, weight, in, out, null);
  }

  private static final Pattern LAYER =
      Pattern.compile("(?:^|[/.])(?:layer|layers|h|block|blocks)[._](\\d+)(?=[/.]|$)");

  /** Every linear site of the graph, in graph order. */
  public static List<LinearSite> find(Graph graph) {
    List<LinearSite> sites = new ArrayList<>();
    Map<String, QuantizedMatMul> int8 = new HashMap<>();
    QuantizedMatMul.find(graph).forEach(q -> int8.put(q.matMul(), q));
    for (Node n : graph.nodes()) {
      QuantizedMatMul q = int8.get(n.name());
      if (q != null) {
        sites.add(new LinearSite(n.name(), modulePath(n.name()), layerOf(n.name()), q.weight(), q.in(), q.out(), q));
        continue;
      }
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
   * The layer's float input x in {@code graph}: the node's first input, or for an int8 site what
   * its activation quantization reads (read from the graph: an earlier adapter may have rewired it).
   */
  public String input(Graph graph) {
    return int8 == null ? named(graph, node).input(0) : named(graph, int8.quantize()).input(0);
  }

  /** The layer's float output y before its bias: the node's output, or an int8 site's scaled product. */
  public String output(Graph graph) {
    return named(graph, int8 == null ? node : int8.output()).output(0);
  }

  private static Node named(Graph graph, String name) {
    return graph.nodes().stream().filter(x -> x.name().equals(name)).findFirst().orElseThrow();
  }

  /**
   * The value the layer outputs: the site's output, or the output of the {@code Add} right after
   * it when that adds a 1-D host bias (torch exports {@code nn.Linear} as MatMul + Add).
   */
  public String biasedOutput(Graph graph) {
    String y = output(graph);
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
    String y = output(graph);
    String out = biasedOutput(graph);
    if (out.equals(y)) {
      return java.util.Optional.empty();
    }
    Node add = graph.producer(out);
    return java.util.Optional.of(add.input(0).equals(y) ? add.input(1) : add.input(0));
  }
}
