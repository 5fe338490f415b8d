package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Pattern;

/**
 * A host tensor trained itself (BitFit's biases, LayerNorm weights): a floating-point host
 * initializer, named as torch names the parameter ({@code encoder.layer.0.output.dense.bias}).
 * That name is the initializer's own where the export kept it, else the module path of the node
 * that reads it plus {@code .bias}/{@code .weight} (exports name some tensors {@code onnx::…}).
 *
 * @param node the tensor's name, what selectors match, e.g. {@code encoder.layer.0.output.LayerNorm.weight}
 * @param modulePath the name without its last segment, e.g. {@code encoder.layer.0.output.LayerNorm}
 * @param initializer the host initializer, e.g. {@code encoder.layer.0.output.LayerNorm.weight} or {@code onnx::Mul_12}
 * @param suffix the last segment of the name: {@code bias} or {@code weight}
 */
public record HostTensorSite(String node, String modulePath, OptionalInt layer, String initializer, String suffix)
    implements Site {
  /** A torch state-dict name: dotted identifiers, e.g. {@code encoder.layer.0.output.dense.bias}. */
  private static final Pattern TORCH_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z0-9_]+)+");

  /** The site of {@code initializer}, read by host node {@code user} as its {@code suffix} ("weight", "bias"). */
  static HostTensorSite of(String initializer, String user, String suffix) {
    String name = TORCH_NAME.matcher(initializer).matches() && initializer.endsWith("." + suffix)
        ? initializer : LinearSite.modulePath(user) + "." + suffix;
    return new HostTensorSite(name, name.substring(0, name.lastIndexOf('.')), LinearSite.layerOf(name), initializer,
        suffix);
  }

  /**
   * Every bias of the host, in graph order: the 1-D initializer added right after a linear site
   * (named after the site's module), and every other floating-point initializer named {@code *.bias}.
   */
  public static List<HostTensorSite> biases(Graph graph) {
    Map<String, LinearSite> linearBias = new HashMap<>();
    for (LinearSite s : LinearSite.find(graph)) {
      s.bias(graph).ifPresent(b -> linearBias.putIfAbsent(b, s));
    }
    Map<String, HostTensorSite> out = new LinkedHashMap<>();
    for (Node n : graph.nodes()) {
      for (String in : n.inputs()) {
        TensorProto t = graph.initializers().get(in);
        if (t == null || out.containsKey(in) || !TensorType.of(t.getDataType()).isFloating()) {
          continue;
        }
        LinearSite s = linearBias.get(in);
        if (s != null) {
          out.put(in, of(in, s.node(), "bias"));
        } else if (in.endsWith(".bias")) {
          out.put(in, of(in, n.name(), "bias"));
        }
      }
    }
    return new ArrayList<>(out.values());
  }

  /**
   * Every LayerNorm weight and bias, in graph order: the scale and bias inputs of {@code
   * LayerNormalization} nodes, and of the decomposed form torch exports, {@code (x − mean) /
   * sqrt(var + eps) · weight + bias}: the 1-D initializer a {@code Mul} applies to a {@code Div}
   * by a {@code Sqrt}, and the 1-D initializer the {@code Add} right after it adds.
   */
  public static List<HostTensorSite> layerNorms(Graph graph) {
    Map<String, Node> producers = graph.producers();
    Map<String, List<Node>> users = new HashMap<>();
    graph.nodes().forEach(n -> n.inputs().forEach(in -> users.computeIfAbsent(in, k -> new ArrayList<>()).add(n)));
    Map<String, HostTensorSite> out = new LinkedHashMap<>();
    for (Node n : graph.nodes()) {
      if (n.opType().equals("LayerNormalization") && n.domain().isEmpty()) {
        addIfInitializer(graph, out, n.input(1), n.name(), "weight");
        if (n.inputs().size() > 2 && !n.input(2).isEmpty()) {
          addIfInitializer(graph, out, n.input(2), n.name(), "bias");
        }
        continue;
      }
      if (!n.opType().equals("Mul") || n.inputs().size() != 2) {
        continue;
      }
      int w = oneD(graph, n.input(1)) ? 1 : oneD(graph, n.input(0)) ? 0 : -1;
      Node div = w < 0 ? null : producers.get(n.input(1 - w));
      Node sqrt = div == null || !div.opType().equals("Div") ? null : producers.get(div.input(1));
      if (sqrt == null || !sqrt.opType().equals("Sqrt")) {
        continue;
      }
      addIfInitializer(graph, out, n.input(w), n.name(), "weight");
      List<Node> after = users.getOrDefault(n.output(0), List.of());
      if (after.size() == 1 && after.get(0).opType().equals("Add")) {
        Node add = after.get(0);
        String b = add.input(0).equals(n.output(0)) ? add.input(1) : add.input(0);
        if (oneD(graph, b) && graph.initializers().get(b).getDims(0) == graph.initializers().get(n.input(w)).getDims(0)) {
          addIfInitializer(graph, out, b, add.name(), "bias");
        }
      }
    }
    return new ArrayList<>(out.values());
  }

  private static boolean oneD(Graph graph, String value) {
    TensorProto t = graph.initializers().get(value);
    return t != null && t.getDimsCount() == 1 && TensorType.of(t.getDataType()).isFloating();
  }

  private static void addIfInitializer(Graph graph, Map<String, HostTensorSite> out, String value, String user,
      String suffix) {
    if (graph.initializers().containsKey(value)) {
      out.putIfAbsent(value, of(value, user, suffix));
    }
  }
}
