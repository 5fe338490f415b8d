package dev.graft.compiler.passes;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
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
 * Import fusion pass: rewrites the decomposed forms that exporters write for a LayerNorm, an
 * RMSNorm, an erf-GELU and a tanh-GELU into one op each, so that the forward pass runs one kernel instead of five to nine and
 * the backward pass is one compact rule that reads few saved values, instead of the rules of
 * every piece reading every intermediate (which also keeps ONNX Runtime from fusing them itself in
 * a training graph).
 *
 * <ul>
 *   <li>LayerNorm over the last axis, as torch exports it before opset 17: {@code mean =
 *       ReduceMean(x)}, {@code d = x − mean}, {@code var = ReduceMean(d² )} (a {@code Pow} by 2 or
 *       {@code d·d}), {@code y = d / Sqrt(var + ε) · γ + β} becomes {@code LayerNormalization(x,
 *       γ, β)} (ai.onnx, opset 17; ε and axis −1 as attributes) with its Mean and InvStdDev
 *       outputs, which its gradient rule reads instead of recomputing them. Float32 and float64.
 *   <li>erf-GELU, {@code x · (1 + erf(x / √2)) · ½} in either association (torch's export, and
 *       the import's own decomposition of an opset-20 {@code Gelu}), becomes {@code
 *       com.microsoft:Gelu(x)}, which ONNX Runtime's CPU and CUDA providers register. Float32 only
 *       (the contrib kernel's type).
 * </ul>
 *
 * <p>Needs: an imported, sorted, shape-inferred graph. Guarantees: each rewritten pattern's
 * intermediates were read by nothing outside it (nor were graph outputs); the fused node keeps
 * the name and the output value of the pattern's last node (so output sites select it as before,
 * and LayerNorm tuning names its tensors by the same module); the graph stays sorted; shapes must
 * be inferred again.
 */
public final class ImportFusion {
  private static final double RELATIVE = 1e-4;

  private ImportFusion() {}

  /** One rewrite: the nodes it removes, the fused node, put where the pattern's last node was. */
  private record Fusion(Set<Node> removed, Node last, Node fused) {}

  /** Fuses every match in {@code graph}; returns how many nodes were fused into how many (as {@code [before, after]}). */
  public static int[] run(Graph graph) {
    Map<String, Node> producers = graph.producers();
    Map<String, List<Node>> users = new HashMap<>();
    graph.nodes().forEach(n -> n.inputs().forEach(in -> users.computeIfAbsent(in, k -> new ArrayList<>()).add(n)));
    Set<String> outputs = new HashSet<>(graph.outputs());
    Matcher m = new Matcher(graph, producers, users, outputs);
    Map<Node, Fusion> byLast = new LinkedHashMap<>();
    Set<Node> taken = new HashSet<>();
    for (Node n : graph.nodes()) {
      Fusion f = switch (n.opType()) {
        case "Div" -> n.domain().isEmpty() ? m.layerNorm(n) : null;
        case "Erf" -> n.domain().isEmpty() ? m.gelu(n) : null;
        case "Sqrt" -> n.domain().isEmpty() ? m.rmsNorm(n) : null;
        case "Tanh" -> n.domain().isEmpty() ? m.tanhGelu(n) : null;
        default -> null;
      };
      if (f != null && f.removed().stream().noneMatch(taken::contains)) {
        taken.addAll(f.removed());
        byLast.put(f.last(), f);
      }
    }
    if (byLast.isEmpty()) {
      return new int[] {0, 0};
    }
    List<Node> rewritten = new ArrayList<>();
    for (Node n : graph.nodes()) {
      Fusion f = byLast.get(n);
      if (f != null) {
        rewritten.add(f.fused());
      } else if (!taken.contains(n)) {
        rewritten.add(n);
      }
    }
    int before = taken.size();
    for (Fusion f : byLast.values()) {
      for (Node r : f.removed()) {
        r.outputs().stream().filter(o -> !f.fused().outputs().contains(o)).forEach(graph.types()::remove);
      }
    }
    graph.nodes().clear();
    graph.nodes().addAll(rewritten);
    removeDeadConstants(graph, taken);
    return new int[] {before, byLast.size()};
  }

  /**
   * Removes the constants only the fused patterns read (ε, the exponents, the GELUs' ½, 1, √2 and coefficients:
   * initializers, and the Constant/Cast/CastLike nodes that made them), so no unused value is left.
   */
  private static void removeDeadConstants(Graph graph, Set<Node> removed) {
    Set<String> candidates = new HashSet<>();
    removed.forEach(n -> candidates.addAll(n.inputs()));
    boolean changed = true;
    while (changed) {
      changed = false;
      Set<String> read = new HashSet<>(graph.outputs());
      graph.nodes().forEach(n -> read.addAll(n.inputs()));
      for (var it = graph.nodes().iterator(); it.hasNext(); ) {
        Node n = it.next();
        boolean constantMaker = n.domain().isEmpty()
            && (n.opType().equals("Constant") || n.opType().equals("Cast") || n.opType().equals("CastLike"));
        if (constantMaker && n.outputs().stream().allMatch(o -> candidates.contains(o) && !read.contains(o))) {
          it.remove();
          n.outputs().forEach(graph.types()::remove);
          candidates.addAll(n.inputs());
          changed = true;
        }
      }
      for (String c : candidates) {
        if (!read.contains(c) && graph.initializers().containsKey(c) && !graph.externalInitializers().contains(c)) {
          graph.initializers().remove(c);
          graph.types().remove(c);
        }
      }
    }
  }

  private record Matcher(Graph graph, Map<String, Node> producers, Map<String, List<Node>> users, Set<String> outputs) {
    /** The node producing {@code value} when it is an ai.onnx {@code op}, else null. */
    @Nullable Node producer(String value, String op) {
      Node p = producers.get(value);
      return p != null && p.opType().equals(op) && p.domain().isEmpty() ? p : null;
    }

    /** Whether {@code value} is read only by {@code reader} (once or more) and is no graph output. */
    boolean onlyReadBy(String value, Node reader) {
      List<Node> u = users.getOrDefault(value, List.of());
      return !outputs.contains(value) && !u.isEmpty() && u.stream().allMatch(reader::equals);
    }

    /** The single ai.onnx node reading {@code value}, when exactly one node reads it and it is {@code op}. */
    @Nullable Node soleUser(String value, String op) {
      List<Node> u = users.getOrDefault(value, List.of());
      if (outputs.contains(value) || u.size() != 1) {
        return null;
      }
      Node n = u.get(0);
      return n.opType().equals(op) && n.domain().isEmpty() ? n : null;
    }

    /** The scalar value of a constant (an initializer, a Constant node, through CastLike/Cast), else null. */
    @Nullable Double scalar(String value) {
      TensorProto t = graph.initializers().get(value);
      if (t == null) {
        Node p = producers.get(value);
        if (p == null || !p.domain().isEmpty()) {
          return null;
        }
        if (p.opType().equals("CastLike") || p.opType().equals("Cast")) {
          return scalar(p.input(0));
        }
        t = p.opType().equals("Constant") ? p.attrTensor("value") : null;
      }
      if (t == null || graph.externalInitializers().contains(value) || Tensors.elementCount(t) != 1
          || !TensorType.of(t.getDataType()).isFloating()
          || t.getDataType() != TensorType.FLOAT && t.getDataType() != TensorType.DOUBLE) {
        return null;
      }
      return Tensors.readDoubles(t)[0];
    }

    boolean isScalar(String value, double expected) {
      Double v = scalar(value);
      return v != null && Math.abs(v - expected) <= RELATIVE * Math.abs(expected);
    }

    /** The operand of a commutative binary node other than {@code value}, or null when it does not read it. */
    static @Nullable String other(Node n, String value) {
      if (n.inputs().size() != 2) {
        return null;
      }
      return n.input(0).equals(value) ? n.input(1) : n.input(1).equals(value) ? n.input(0) : null;
    }

    /** Whether a ReduceMean node averages over the last axis only, keeping it. */
    boolean meanOverLastAxis(Node r, String input) {
      TensorType t = graph.type(input);
      List<Long> axes = r.attrInts("axes");
      return t != null && t.hasRank() && r.inputs().size() == 1 && axes != null && axes.size() == 1
          && (axes.get(0) == -1 || axes.get(0) == t.rank() - 1) && r.attrInt("keepdims", 1) == 1;
    }

    /** A 1-D floating initializer or value of {@code width} elements, the element type of {@code like}. */
    boolean vectorOf(String value, TensorType like) {
      TensorType t = graph.type(value);
      return t != null && t.hasRank() && t.rank() == 1 && t.elemType() == like.elemType()
          && like.dims().get(like.rank() - 1).isKnown() && t.dims().get(0).isKnown()
          && t.dims().get(0).size() == like.dims().get(like.rank() - 1).size();
    }

    /** The LayerNorm whose normalizing {@code Div} is {@code div}, or null. */
    @Nullable Fusion layerNorm(Node div) {
      Node sqrt = producer(div.input(1), "Sqrt");
      Node sub = producer(div.input(0), "Sub");
      if (sqrt == null || sub == null) {
        return null;
      }
      Node addEps = producer(sqrt.input(0), "Add");
      Node mean = producer(sub.input(1), "ReduceMean");
      String x = sub.input(0);
      TensorType tx = graph.type(x);
      if (addEps == null || mean == null || !mean.input(0).equals(x) || tx == null || !tx.hasRank()
          || tx.rank() < 1 || (tx.elemType() != TensorType.FLOAT && tx.elemType() != TensorType.DOUBLE)
          || !meanOverLastAxis(mean, x)) {
        return null;
      }
      Node var = producer(addEps.input(0), "ReduceMean");
      String epsValue = addEps.input(1);
      if (var == null) {
        var = producer(addEps.input(1), "ReduceMean");
        epsValue = addEps.input(0);
      }
      Double eps = epsValue == null ? null : scalar(epsValue);
      if (var == null || eps == null || eps <= 0 || !meanOverLastAxis(var, var.input(0))) {
        return null;
      }
      Node square = producers.get(var.input(0));
      String d = sub.output(0);
      boolean squares = square != null && square.domain().isEmpty()
          && (square.opType().equals("Pow") && square.input(0).equals(d) && isScalar(square.input(1), 2)
              || square.opType().equals("Mul") && square.input(0).equals(d) && square.input(1).equals(d));
      if (!squares) {
        return null;
      }
      Node scale = soleUser(div.output(0), "Mul");
      String gamma = scale == null ? null : other(scale, div.output(0));
      if (gamma == null || gamma.equals(div.output(0)) || !vectorOf(gamma, tx)) {
        return null;
      }
      Node shift = soleUser(scale.output(0), "Add");
      String beta = shift == null ? null : other(shift, scale.output(0));
      if (beta != null && (beta.equals(scale.output(0)) || !vectorOf(beta, tx))) {
        shift = null;
        beta = null;
      }
      List<Node> users = users().getOrDefault(d, List.of()).stream().distinct().toList();
      boolean dInside = !outputs.contains(d) && users.size() == 2 && users.contains(square) && users.contains(div);
      if (!onlyReadBy(mean.output(0), sub) || !dInside || !onlyReadBy(square.output(0), var)
          || !onlyReadBy(var.output(0), addEps) || !onlyReadBy(addEps.output(0), sqrt)
          || !onlyReadBy(sqrt.output(0), div)) {
        return null;
      }
      Node last = shift != null ? shift : scale;
      Set<Node> removed = new HashSet<>(List.of(mean, sub, square, var, addEps, sqrt, div, scale));
      if (shift != null) {
        removed.add(shift);
      }
      String statsBase = last.name();
      List<String> outs = List.of(last.output(0), graph.freshValue(statsBase + "_mean"),
          graph.freshValue(statsBase + "_inv_std_dev"));
      List<String> ins = beta == null ? List.of(x, gamma) : List.of(x, gamma, beta);
      Node fused = new Node(last.name(), "LayerNormalization", "", ins, outs,
          Node.attrs(Node.attr("axis", -1L), Node.attr("epsilon", (float) (double) eps)));
      return new Fusion(removed, last, fused);
    }

    /** The erf-GELU around {@code erf}, or null. */
    @Nullable Fusion gelu(Node erf) {
      Node scaled = producers.get(erf.input(0));
      if (scaled == null || !scaled.domain().isEmpty() || scaled.inputs().size() != 2) {
        return null;
      }
      String x = scaled.input(0);
      boolean byRoot2 = scaled.opType().equals("Div") && isScalar(scaled.input(1), Math.sqrt(2))
          || scaled.opType().equals("Mul") && isScalar(scaled.input(1), Math.sqrt(0.5));
      TensorType tx = graph.type(x);
      if (!byRoot2 || tx == null || tx.elemType() != TensorType.FLOAT || !onlyReadBy(scaled.output(0), erf)) {
        return null;
      }
      return halfTimesOnePlus(erf, x, new HashSet<>(List.of(scaled, erf)), "Gelu");
    }

    /**
     * The tail both GELUs share, {@code ½·x·(1 + inner)} in either association (torch's {@code (x·(1 +
     * inner))·½} or the import's and GPT-2's {@code (½·x)·(1 + inner)}), after {@code inner} (the Erf or Tanh
     * node) of {@code x}: the fusion into com.microsoft {@code fusedOp}, removing {@code removed} and the
     * tail, or null.
     */
    @Nullable Fusion halfTimesOnePlus(Node inner, String x, Set<Node> removed, String fusedOp) {
      Node onePlus = soleUser(inner.output(0), "Add");
      String one = onePlus == null ? null : other(onePlus, inner.output(0));
      if (one == null || !isScalar(one, 1)) {
        return null;
      }
      Node product = soleUser(onePlus.output(0), "Mul");
      String partner = product == null ? null : other(product, onePlus.output(0));
      if (partner == null) {
        return null;
      }
      removed.addAll(List.of(onePlus, product));
      Node last;
      if (partner.equals(x)) {
        last = soleUser(product.output(0), "Mul");
        String half = last == null ? null : other(last, product.output(0));
        if (half == null || !isScalar(half, 0.5)) {
          return null;
        }
      } else {
        Node halfX = producer(partner, "Mul");
        String half = halfX == null ? null : other(halfX, x);
        if (half == null || !isScalar(half, 0.5) || !onlyReadBy(partner, product)) {
          return null;
        }
        removed.add(halfX);
        last = product;
      }
      removed.add(last);
      Node fused = new Node(last.name(), fusedOp, Graph.MS_DOMAIN, List.of(x), List.of(last.output(0)), Node.attrs());
      return new Fusion(removed, last, fused);
    }

    /** The node producing {@code value} when it is an ai.onnx binary {@code op} with a scalar {@code c} operand. */
    @Nullable Node byScalar(String value, String op, double c) {
      Node p = producer(value, op);
      return p != null && p.inputs().size() == 2 && (isScalar(p.input(0), c) || isScalar(p.input(1), c)) ? p : null;
    }

    /** The operand of a binary node {@link #byScalar} found, the one that is not the scalar. */
    String nonScalar(Node n, double c) {
      return isScalar(n.input(1), c) ? n.input(0) : n.input(1);
    }

    /** A Cast of {@code value} to its own element type (an identity at float32), else null. */
    @Nullable Node identityCast(@Nullable Node cast) {
      if (cast == null || !cast.opType().equals("Cast") || !cast.domain().isEmpty()) {
        return null;
      }
      TensorType in = graph.type(cast.input(0));
      return in != null && cast.attrInt("to", -1) == in.elemType() ? cast : null;
    }

    /** The RMSNorm whose {@code Sqrt(mean(f²) + ε)} is {@code sqrt}, or null. */
    @Nullable Fusion rmsNorm(Node sqrt) {
      Node addEps = producer(sqrt.input(0), "Add");
      if (addEps == null || addEps.inputs().size() != 2) {
        return null;
      }
      Node var = producer(addEps.input(0), "ReduceMean");
      String epsValue = addEps.input(1);
      if (var == null) {
        var = producer(addEps.input(1), "ReduceMean");
        epsValue = addEps.input(0);
      }
      Double eps = scalar(epsValue);
      if (var == null || eps == null || eps <= 0 || !meanOverLastAxis(var, var.input(0))) {
        return null;
      }
      Node square = producers.get(var.input(0));
      if (square == null || !square.domain().isEmpty()) {
        return null;
      }
      String f = square.input(0);
      boolean squares = square.opType().equals("Pow") && isScalar(square.input(1), 2)
          || square.opType().equals("Mul") && square.input(1).equals(f);
      TensorType tf = graph.type(f);
      if (!squares || tf == null || !tf.hasRank() || tf.rank() < 1 || tf.elemType() != TensorType.FLOAT
          || !onlyReadBy(square.output(0), var) || !onlyReadBy(var.output(0), addEps)
          || !onlyReadBy(addEps.output(0), sqrt)) {
        return null;
      }
      Node centred = producer(f, "Sub");
      if (centred != null && producers.get(centred.input(1)) != null
          && producers.get(centred.input(1)).opType().equals("ReduceMean")) {
        return null; // a LayerNorm's x − mean: layerNorm fuses it
      }
      Set<Node> removed = new HashSet<>(List.of(square, var, addEps, sqrt));
      // f · r, with r = Reciprocal(sqrt) or 1 / sqrt; or f / sqrt.
      Node normalize = soleUser(sqrt.output(0), "Div");
      if (normalize != null && normalize.input(1).equals(sqrt.output(0)) && isScalar(normalize.input(0), 1)) {
        removed.add(normalize);
        normalize = soleUser(normalize.output(0), "Mul");
      } else if (normalize == null) {
        Node reciprocal = soleUser(sqrt.output(0), "Reciprocal");
        if (reciprocal == null) {
          return null;
        }
        removed.add(reciprocal);
        normalize = soleUser(reciprocal.output(0), "Mul");
      } else if (!normalize.input(0).equals(f) || !normalize.input(1).equals(sqrt.output(0))) {
        return null;
      }
      if (normalize == null || !normalize.inputs().contains(f)) {
        return null;
      }
      removed.add(normalize);
      String x = f;
      // An identity Cast into the pattern goes with it when only the pattern reads its output.
      List<Node> fUsers = users.getOrDefault(f, List.of()).stream().distinct().toList();
      boolean fInside = !outputs.contains(f) && fUsers.size() == 2 && fUsers.contains(square) && fUsers.contains(normalize);
      Node castIn = identityCast(producers.get(f));
      if (castIn != null && fInside) {
        removed.add(castIn);
        x = castIn.input(0);
      }
      String normed = normalize.output(0);
      Node castOut = identityCast(soleUser(normed, "Cast"));
      if (castOut != null) {
        removed.add(castOut);
        normed = castOut.output(0);
      }
      Node scale = soleUser(normed, "Mul");
      String weight = scale == null ? null : other(scale, normed);
      if (weight == null || weight.equals(normed) || !vectorOf(weight, tf)) {
        return null;
      }
      removed.add(scale);
      List<String> outs = List.of(scale.output(0), graph.freshValue(scale.name() + "_inv_std_var"));
      Node fused = new Node(scale.name(), "SimplifiedLayerNormalization", "", List.of(x, weight), outs,
          Node.attrs(Node.attr("axis", -1L), Node.attr("epsilon", (float) (double) eps)));
      return new Fusion(removed, scale, fused);
    }

    /** The tanh-GELU around {@code tanh}, or null. */
    @Nullable Fusion tanhGelu(Node tanh) {
      Node scaled = byScalar(tanh.input(0), "Mul", Math.sqrt(2 / Math.PI));
      Node poly = scaled == null ? null : producer(nonScalar(scaled, Math.sqrt(2 / Math.PI)), "Add");
      if (poly == null || poly.inputs().size() != 2 || !onlyReadBy(scaled.output(0), tanh)
          || !onlyReadBy(poly.output(0), scaled)) {
        return null;
      }
      Set<Node> removed = new HashSet<>(List.of(tanh, scaled, poly));
      String x = null;
      for (int k = 0; k < 2 && x == null; k++) {
        Node term = byScalar(poly.input(1 - k), "Mul", 0.044715);
        Node cube = term == null ? null : producers.get(nonScalar(term, 0.044715));
        String base = poly.input(k);
        if (cube == null || !cube.domain().isEmpty() || !onlyReadBy(term.output(0), poly)
            || !onlyReadBy(cube.output(0), term)) {
          continue;
        }
        if (cube.opType().equals("Pow") && cube.input(0).equals(base) && isScalar(cube.input(1), 3)) {
          removed.addAll(List.of(term, cube));
          x = base;
        } else if (cube.opType().equals("Mul") && cube.inputs().contains(base)) {
          Node square = producer(other(cube, base), "Mul");
          if (square != null && square.input(0).equals(base) && square.input(1).equals(base)
              && onlyReadBy(square.output(0), cube)) {
            removed.addAll(List.of(term, cube, square));
            x = base;
          }
        }
      }
      TensorType tx = x == null ? null : graph.type(x);
      if (tx == null || tx.elemType() != TensorType.FLOAT) {
        return null;
      }
      return halfTimesOnePlus(tanh, x, removed, "FastGelu");
    }
  }
}
