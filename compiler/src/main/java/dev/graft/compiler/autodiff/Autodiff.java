package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.QuantizedMatMul;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.Int8Backward;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * Autodiff pass: reverse-mode differentiation of a scalar loss with respect to trainable
 * parameters, appending the backward nodes to the graph. Needs: shape-inferred, topologically
 * sorted graph; parameters are graph inputs. Guarantees: only nodes on a path from a parameter
 * to the loss are differentiated (frozen weights get no gradient, and nothing before the first
 * trainable parameter is touched); every emitted op is standard ONNX.
 *
 * <p>An int8 linear layer ({@link QuantizedMatMul}: quantize x, integer product, scales) is
 * differentiated as one function {@code x ↦ y} by its straight-through rule ({@link
 * ContractionGradients#int8MatMul}); its inner nodes carry no gradient of their own. An int8
 * pattern it does not recognise stops autodiff at its {@code DynamicQuantizeLinear}, which has
 * no rule.
 */
public final class Autodiff {
  private Autodiff() {}

  /**
   * Appends the backward pass; returns each parameter's gradient value name, in the order of
   * {@code parameters}.
   *
   * @throws MissingGradientException when a node on the path has no gradient rule
   */
  public static Map<String, String> differentiate(Graph graph, String loss, List<String> parameters) {
    return backward(graph, loss, parameters).values();
  }

  /**
   * The gradients {@link #differentiate} appends, and which parameters they did not reach.
   *
   * @param values each parameter's gradient value name, in the order of the parameters
   * @param unreached the parameters no gradient reached (no path to the loss through ops that pass
   *     one): their gradient is zeros, in the order of the parameters
   * @param integerProducts the nodes whose backward product is integer under {@link
   *     Int8Backward#INTEGER} (an int8 linear layer by its output node, a {@code MatMul} by a frozen
   *     float weight by its own name), in backward order; empty under DEQUANTIZED
   */
  public record Gradients(Map<String, String> values, List<String> unreached, List<String> integerProducts) {}

  /**
   * {@link #differentiate}, also telling which parameters no gradient reached.
   *
   * @throws MissingGradientException when a node on the path has no gradient rule, or its rule
   *     cannot apply to it
   */
  public static Gradients backward(Graph graph, String loss, List<String> parameters) {
    return backward(graph, loss, parameters, Int8Backward.DEQUANTIZED);
  }

  /**
   * {@link #backward(Graph, String, List)}, multiplying by the host's frozen weights (int8 linear
   * layers, float32 {@code MatMul} weights) as {@code int8Backward} says ({@link
   * ContractionGradients#int8MatMul}, {@link Grad#integerProduct}).
   */
  public static Gradients backward(Graph graph, String loss, List<String> parameters, Int8Backward int8Backward) {
    List<Node> forward = new ArrayList<>(graph.nodes());
    // The int8 linear layers, by their output node, and their inner nodes.
    Map<String, QuantizedMatMul> int8 = new HashMap<>();
    Set<String> inner = new HashSet<>();
    for (QuantizedMatMul q : QuantizedMatMul.find(graph)) {
      int8.put(q.output(), q);
      inner.addAll(q.innerNodes());
    }
    // 1. Values that depend on a parameter (floating values only: integers carry no gradient).
    Set<String> dependent = new HashSet<>(parameters);
    for (Node n : forward) {
      if (GradientRegistry.isNonDifferentiable(n.opType()) || inner.contains(n.name())) {
        continue;
      }
      QuantizedMatMul q = int8.get(n.name());
      if (q != null ? dependent.contains(q.x()) : n.inputs().stream().anyMatch(dependent::contains)) {
        for (String out : n.outputs()) {
          TensorType t = graph.type(out);
          if (!out.isEmpty() && (t == null || t.elemType() == 0 || t.isFloating())) {
            dependent.add(out);
          }
        }
      }
    }
    // 2. Of those, the ones the loss depends on.
    Set<String> needed = new HashSet<>();
    needed.add(loss);
    for (int i = forward.size() - 1; i >= 0; i--) {
      Node n = forward.get(i);
      if (!inner.contains(n.name()) && n.outputs().stream().anyMatch(needed::contains)) {
        QuantizedMatMul q = int8.get(n.name());
        for (String in : q != null ? List.of(q.x()) : n.inputs()) {
          if (dependent.contains(in)) {
            needed.add(in);
          }
        }
      }
    }
    TensorType lossType = graph.type(loss);
    if (lossType == null || !lossType.isFloating()) {
      // Name the first op on the path whose result type is unknown: that is what to fix.
      for (Node n : forward) {
        if (n.outputs().stream().anyMatch(o -> needed.contains(o)
            && (graph.type(o) == null || graph.type(o).elemType() == 0))) {
          throw MissingGradientException.noRule(n, "op unknown to shape inference and without a gradient rule");
        }
      }
      throw new IllegalArgumentException("loss '" + loss + "' must be a floating value, got " + lossType);
    }
    // 3. Walk backwards, accumulating gradient contributions per value.
    Map<String, List<String>> contributions = new HashMap<>();
    List<String> integerProducts = new ArrayList<>();
    contributions.computeIfAbsent(loss, k -> new ArrayList<>())
        .add(graph.scalar("/grad/loss_seed", graph.typeOrThrow(loss).elemType(), 1.0));
    for (int i = forward.size() - 1; i >= 0; i--) {
      Node n = forward.get(i);
      if (inner.contains(n.name())) {
        continue;
      }
      QuantizedMatMul q = int8.get(n.name());
      if (q != null) {
        String gy = total(graph, n, q.y(), contributions);
        if (gy != null && needed.contains(q.x()) && dependent.contains(q.x())) {
          contributions.computeIfAbsent(q.x(), k -> new ArrayList<>())
              .add(ContractionGradients.int8MatMul(q, gy,
                  new Grad(graph, n, new boolean[] {true}, int8Backward, integerProducts)));
        }
        continue;
      }
      boolean[] needs = new boolean[n.inputs().size()];
      boolean any = false;
      for (int k = 0; k < needs.length; k++) {
        needs[k] = needed.contains(n.input(k)) && dependent.contains(n.input(k));
        any |= needs[k];
      }
      if (!any || n.outputs().stream().noneMatch(contributions::containsKey)) {
        continue;
      }
      GradientRule rule = GradientRegistry.rule(n);
      if (rule == null) {
        throw MissingGradientException.noRule(n, n.opType().equals("DynamicQuantizeLinear")
            || n.opType().equals("MatMulInteger")
            ? "no gradient rule of its own: an int8 linear layer is differentiated as a whole (straight through) where"
                + " it is DynamicQuantizeLinear → MatMulInteger (int8 [in, out] weight) → Cast → Mul by the scales and"
                + " nothing else reads the inner values"
            : "no gradient rule");
      }
      List<@Nullable String> outGrads = new ArrayList<>();
      for (String out : n.outputs()) {
        outGrads.add(total(graph, n, out, contributions));
      }
      if (outGrads.get(0) == null && !GradientRegistry.acceptsAnyOutputGradient(n.opType())) {
        throw new MissingGradientException(n, "only the first output of a node can carry a gradient");
      }
      List<@Nullable String> inGrads = rule.backward(n, outGrads, new Grad(graph, n, needs, int8Backward,
          integerProducts));
      for (int k = 0; k < needs.length; k++) {
        String gk = k < inGrads.size() ? inGrads.get(k) : null;
        if (needs[k] && gk != null) {
          contributions.computeIfAbsent(n.input(k), key -> new ArrayList<>()).add(gk);
        }
      }
    }
    Map<String, String> result = new LinkedHashMap<>();
    List<String> unreached = new ArrayList<>();
    for (String p : parameters) {
      List<String> c = contributions.get(p);
      String grad;
      if (c == null) {
        unreached.add(p);
        TensorType t = graph.typeOrThrow(p);
        grad = graph.op("/grad/" + p + "/zeros", "ConstantOfShape",
            List.of(graph.op("/grad/" + p + "/shape", "Shape", List.of(p))),
            Node.attr("value", Tensors.floats("zero", t.elemType(), List.of(1L), new double[] {0})));
      } else {
        grad = sum(graph, "/grad/" + p, c);
      }
      result.put(p, grad);
    }
    ShapeInference.run(graph);
    return new Gradients(result, unreached, integerProducts);
  }

  private static @Nullable String total(Graph graph, Node n, String value, Map<String, List<String>> contributions) {
    List<String> c = contributions.get(value);
    return c == null ? null : sum(graph, "/grad" + (n.name().startsWith("/") ? "" : "/") + n.name() + "/acc", c);
  }

  private static String sum(Graph graph, String name, List<String> values) {
    return values.size() == 1 ? values.get(0) : graph.op(name, "Sum", values);
  }
}
