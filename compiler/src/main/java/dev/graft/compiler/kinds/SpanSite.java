package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.TreeSet;

/**
 * A layer's feed-forward block as a span from an input value to an output value: from the input
 * x of its first linear layer(s) ({@code intermediate/dense}; gate and up projections sharing x)
 * to the biased output of the linear layer that reads their activation ({@code output/dense}),
 * where everything between is elementwise. Parallel adapters read x and add to the output.
 *
 * @param node the span's last linear node, e.g. {@code /encoder/layer.0/output/dense/MatMul}
 *     (what selectors match)
 * @param modulePath the module holding that layer, e.g. {@code encoder.layer.0.output}
 * @param input x, e.g. the input of {@code /encoder/layer.0/intermediate/dense/MatMul}
 * @param output the last linear layer's output, bias included
 * @param in the width of x
 * @param out the width of the output
 */
public record SpanSite(String node, String modulePath, OptionalInt layer, String input, String output, long in, long out)
    implements Site {
  /** Ops a span may hold between its linear layers (activations and their decompositions). */
  private static final Set<String> ELEMENTWISE = Set.of("Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh",
      "Sigmoid", "Relu", "LeakyRelu", "Gelu", "Softplus", "Exp", "Neg", "Identity", "Dropout", "Clip", "Min", "Max");

  /**
   * Every layer's feed-forward span, in graph order.
   *
   * @throws SiteException when the host has no such span, or a layer with linear layers has none
   */
  public static List<SpanSite> find(Graph graph) {
    List<LinearSite> linear = LinearSite.find(graph);
    Map<String, LinearSite> byOutput = new HashMap<>();
    Map<String, Node> nodes = new HashMap<>();
    graph.nodes().forEach(n -> nodes.put(n.name(), n));
    for (LinearSite s : linear) {
      byOutput.put(s.output(graph), s);
      byOutput.put(s.biasedOutput(graph), s);
    }
    Map<String, Node> producers = graph.producers();
    List<SpanSite> spans = new ArrayList<>();
    TreeSet<Integer> layers = new TreeSet<>();
    TreeSet<Integer> covered = new TreeSet<>();
    for (LinearSite end : linear) {
      if (end.layer().isEmpty()) {
        continue;
      }
      layers.add(end.layer().getAsInt());
      Set<LinearSite> starts = new LinkedHashSet<>();
      if (!reachesOnlyLinear(end.input(graph), graph, producers, byOutput, starts, new HashSet<>())) {
        continue;
      }
      Set<String> inputs = new HashSet<>();
      boolean sameLayer = true;
      for (LinearSite s : starts) {
        Node n = nodes.get(s.node());
        sameLayer &= s.layer().equals(end.layer()) && !s.equals(end);
        inputs.add(n.opType().equals("Gemm") && n.attrInt("transA", 0) == 1 ? "" : s.input(graph));
      }
      if (starts.isEmpty() || !sameLayer || inputs.size() != 1 || inputs.contains("")) {
        continue;
      }
      LinearSite first = starts.iterator().next();
      String module = end.modulePath().contains(".")
          ? end.modulePath().substring(0, end.modulePath().lastIndexOf('.')) : end.modulePath();
      spans.add(new SpanSite(end.node(), module, end.layer(), inputs.iterator().next(), end.biasedOutput(graph),
          first.in(), end.out()));
      covered.add(end.layer().getAsInt());
    }
    if (spans.isEmpty()) {
      throw new SiteException("found no feed-forward block: a linear layer (e.g. output/dense) whose input is an"
          + " elementwise function (the activation) of linear layers of the same layer reading one input"
          + " (e.g. intermediate/dense)");
    }
    layers.removeAll(covered);
    if (!layers.isEmpty()) {
      throw new SiteException("layers " + layers + " have linear layers but no feed-forward block (a linear layer"
          + " reading an elementwise activation of linear layers of the same layer); feed-forward blocks were found"
          + " in layers " + covered);
    }
    return spans;
  }

  /**
   * Whether {@code value} is an elementwise function of linear-layer outputs (collected into
   * {@code starts}) and constants (initializers, Constant nodes) only.
   */
  private static boolean reachesOnlyLinear(String value, Graph graph, Map<String, Node> producers,
      Map<String, LinearSite> byOutput, Set<LinearSite> starts, Set<String> seen) {
    if (!seen.add(value)) {
      return true;
    }
    LinearSite s = byOutput.get(value);
    if (s != null) {
      starts.add(s);
      return true;
    }
    Node n = producers.get(value);
    // com.microsoft Gelu and FastGelu: the import fuses an erf-GELU and a tanh-GELU into them.
    boolean elementwise = n != null && (n.domain().isEmpty() && ELEMENTWISE.contains(n.opType())
        || n.domain().equals(Graph.MS_DOMAIN) && (n.opType().equals("Gelu") || n.opType().equals("FastGelu")));
    if (!elementwise) {
      return false;
    }
    boolean any = false;
    for (String in : n.inputs()) {
      Node p = producers.get(in);
      if (in.isEmpty() || graph.initializers().containsKey(in) || (p != null && p.opType().equals("Constant"))) {
        continue;
      }
      if (!reachesOnlyLinear(in, graph, producers, byOutput, starts, seen)) {
        return false;
      }
      any = true;
    }
    return any;
  }
}
