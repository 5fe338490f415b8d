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
 * as torch exports {@code nn.Linear}), a MatMul whose second operand is a {@code Transpose}
 * of a 2-D host weight {@code [out, in]} (a tied LM head {@code MatMul(h, Transpose(wte))} as
 * torch exports it without constant folding: the weight is the embedding table itself, so
 * adapters run beside it and a merged export gives the head a weight of its own), or an int8
 * linear layer ({@link QuantizedMatMul}: the site's node is its {@code MatMulInteger}, its weight
 * the int8 {@code [in, out]} initializer, its input the float x before the activation's
 * quantization and its output the float y after the scales). Adapters read {@link #input} and
 * add to {@link #output}, so they need not know which it is; a kind that needs the dense host
 * weight refuses int8 sites ({@link #int8}).
 *
 * @param node the host node name, e.g. {@code /encoder/layer.0/attention/self/query/MatMul}
 * @param modulePath the module path PEFT uses, e.g. {@code encoder.layer.0.attention.self.query}
 * @param layer the layer index found in the name ({@code layer.N}, {@code layers.N}, {@code h.N},
 *     {@code block.N}), if any
 * @param weight the host initializer the site multiplies by
 * @param outFirst whether {@code weight} is stored {@code [out, in]}: a Gemm with {@code transB=1},
 *     or a MatMul reading it through a Transpose
 * @param int8 the int8 layer, where the site is one; null for a float MatMul or Gemm
 */
public record LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out,
    boolean outFirst, @Nullable QuantizedMatMul int8) implements Site {
  /** A float MatMul or Gemm site. */
  public LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out,
      boolean outFirst) {
    this(node, modulePath, layer, weight, in, out, outFirst, null);
  }

  /** A float MatMul or Gemm site whose weight is stored {@code [in, out]}. */
  public LinearSite(String node, String modulePath, OptionalInt layer, String weight, long in, long out) {
    this(node, modulePath, layer, weight, in, out, false, null);
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
      LinearSite site = q != null ? int8Site(n, q) : at(graph, n);
      if (site != null) {
        sites.add(site);
      }
    }
    return sites;
  }

  private static LinearSite int8Site(Node n, QuantizedMatMul q) {
    return new LinearSite(n.name(), modulePath(n.name()), layerOf(n.name()), q.weight(), q.in(), q.out(), false, q);
  }

  /** The linear site node {@code n} of {@code graph} is, or null when it is none. */
  public static @Nullable LinearSite at(Graph graph, Node n) {
    if (n.opType().equals("MatMulInteger")) {
      QuantizedMatMul q = QuantizedMatMul.at(graph, n.name());
      return q == null ? null : int8Site(n, q);
    }
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
    List<Node> users = graph.readers(y);
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
