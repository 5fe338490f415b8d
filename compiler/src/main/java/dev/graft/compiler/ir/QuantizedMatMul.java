package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * An int8 linear layer as ONNX Runtime's dynamic quantization writes it (the langchain4j
 * {@code -q} hosts):
 *
 * <pre>
 *   (xq, xs, xzp) = DynamicQuantizeLinear(x)
 *   p = MatMulInteger(xq, Wq, xzp, wzp)          Wq int8 [in, out], wzp int8 [out] or scalar
 *   s = Mul(xs, ws)                              ws float [out] or scalar
 *   y = Mul(Cast(p, to = FLOAT), s)              ≈ x · W_deq, W_deq = (Wq − wzp) · ws per column
 * </pre>
 *
 * The layer's float input is {@code x} and its float output {@code y}; the bias a torch export
 * adds after it is a separate {@code Add}. One {@code DynamicQuantizeLinear} may feed several
 * layers that read the same x (query, key and value).
 *
 * <p>Recognised only where nothing else reads the pattern's inner values (the quantized x, its
 * scale and zero point, the integer product, the scale product): then the pattern as a whole is
 * the function {@code x ↦ y}, and autodiff gives it one straight-through rule (see {@code
 * ContractionGradients.int8MatMul}). Anywhere else the quantize node has no gradient rule and
 * autodiff says so.
 *
 * @param x the float input
 * @param quantize the {@code DynamicQuantizeLinear} node of x
 * @param matMul the {@code MatMulInteger} node (the site's node)
 * @param cast the {@code Cast} of its int32 product to float
 * @param scales the {@code Mul} of x's scale and the weight scale
 * @param output the {@code Mul} that gives y
 * @param weight the int8 weight initializer {@code [in, out]}
 * @param weightScale the weight's float scale initializer (scalar or {@code [out]})
 * @param weightZeroPoint the weight's zero point initializer (scalar or {@code [out]}), or null (0)
 * @param y the float output
 */
public record QuantizedMatMul(String x, String quantize, String matMul, String cast, String scales, String output,
    String weight, String weightScale, @Nullable String weightZeroPoint, String y, long in, long out) {

  /** The pattern's nodes other than its output node: they carry no gradient of their own. */
  public List<String> innerNodes() {
    return List.of(quantize, matMul, cast, scales);
  }

  /** Every int8 linear layer of the graph, in graph order. */
  public static List<QuantizedMatMul> find(Graph graph) {
    Map<String, List<Node>> consumers = new HashMap<>();
    for (Node n : graph.nodes()) {
      for (String in : n.inputs()) {
        if (!in.isEmpty()) {
          consumers.computeIfAbsent(in, k -> new ArrayList<>()).add(n);
        }
      }
    }
    Map<String, QuantizedMatMul> byMatMul = new LinkedHashMap<>();
    for (Node n : graph.nodes()) {
      QuantizedMatMul q = n.opType().equals("MatMulInteger") && n.domain().isEmpty() ? match(graph, n, consumers) : null;
      if (q != null) {
        byMatMul.put(q.matMul(), q);
      }
    }
    // A quantize node whose outputs something outside the recognised layers reads: its layers are
    // not the function x ↦ y alone, so none of them is taken.
    Set<String> inner = new HashSet<>();
    byMatMul.values().forEach(q -> inner.addAll(q.innerNodes()));
    Set<String> refused = new HashSet<>();
    for (QuantizedMatMul q : byMatMul.values()) {
      for (String v : nodeNamed(graph, q.quantize()).outputs()) {
        for (Node c : consumers.getOrDefault(v, List.of())) {
          if (!inner.contains(c.name())) {
            refused.add(q.quantize());
          }
        }
      }
    }
    return byMatMul.values().stream().filter(q -> !refused.contains(q.quantize())).toList();
  }

  /** The int8 linear layer whose {@code MatMulInteger} node is {@code matMulNode}, or null. */
  public static @Nullable QuantizedMatMul at(Graph graph, String matMulNode) {
    return find(graph).stream().filter(q -> q.matMul().equals(matMulNode)).findFirst().orElse(null);
  }

  private static @Nullable QuantizedMatMul match(Graph graph, Node mm, Map<String, List<Node>> consumers) {
    if (mm.inputs().size() < 3) {
      return null;
    }
    Node quantize = graph.producer(mm.input(0));
    if (quantize == null || !quantize.opType().equals("DynamicQuantizeLinear") || !quantize.domain().isEmpty()
        || quantize.outputs().size() < 3 || !mm.input(2).equals(quantize.output(2))) {
      return null;
    }
    TensorProto w = graph.initializers().get(mm.input(1));
    if (w == null || w.getDimsCount() != 2 || w.getDataType() != TensorType.INT8) {
      return null;
    }
    long out = w.getDims(1);
    String zeroPoint = mm.inputs().size() > 3 && !mm.input(3).isEmpty() ? mm.input(3) : null;
    if (zeroPoint != null && !perColumn(graph.initializers().get(zeroPoint), TensorType.INT8, out)) {
      return null;
    }
    Node cast = only(consumers, mm.output(0));
    if (cast == null || !cast.opType().equals("Cast") || cast.attrInt("to", 0) != TensorType.FLOAT) {
      return null;
    }
    Node output = only(consumers, cast.output(0));
    if (output == null || !output.opType().equals("Mul") || output.inputs().size() != 2) {
      return null;
    }
    String s = output.input(0).equals(cast.output(0)) ? output.input(1) : output.input(0);
    Node scales = graph.producer(s);
    if (scales == null || !scales.opType().equals("Mul") || scales.inputs().size() != 2 || only(consumers, s) != output) {
      return null;
    }
    String xs = quantize.output(1);
    String ws = scales.input(0).equals(xs) ? scales.input(1) : scales.input(1).equals(xs) ? scales.input(0) : null;
    if (ws == null || !perColumn(graph.initializers().get(ws), TensorType.FLOAT, out)
        || zeroPoint != null && graph.initializers().get(zeroPoint).getDimsCount()
            != graph.initializers().get(ws).getDimsCount()) {
      return null;
    }
    return new QuantizedMatMul(quantize.input(0), quantize.name(), mm.name(), cast.name(), scales.name(), output.name(),
        mm.input(1), ws, zeroPoint, output.output(0), w.getDims(0), out);
  }

  /** A scalar, or a 1-D tensor of {@code out} elements, of element type {@code elem}. */
  private static boolean perColumn(@Nullable TensorProto t, int elem, long out) {
    return t != null && t.getDataType() == elem
        && (t.getDimsCount() == 0 || t.getDimsCount() == 1 && t.getDims(0) == out);
  }

  private static @Nullable Node only(Map<String, List<Node>> consumers, String value) {
    List<Node> c = consumers.getOrDefault(value, List.of());
    return c.size() == 1 ? c.get(0) : null;
  }

  private static Node nodeNamed(Graph graph, String name) {
    return graph.nodes().stream().filter(n -> n.name().equals(name)).findFirst().orElseThrow();
  }
}
