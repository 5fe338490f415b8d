package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Import pass: reads an ONNX model into the IR and normalizes every node to the forms of
 * ai.onnx opset {@value Graph#OPSET}, so later passes see one form per op (axes of
 * Unsqueeze/Squeeze/ReduceSum/Split as inputs, ReduceMean/ReduceMax axes as attributes,
 * host Dropout as Identity). Softmax's pre-13 axis semantics need ranks, so {@link
 * ShapeInference} finishes that rewrite. Initializers larger than {@link #INLINE_LIMIT}
 * elements are marked external: emitted graphs reference them without copying their data.
 */
public final class OnnxImport {
  /** Host initializers with more elements than this are fed at run time, not embedded. */
  public static final long INLINE_LIMIT = 64;

  public static final int MIN_OPSET = 11;
  public static final int MAX_OPSET = 23;

  private OnnxImport() {}

  /** The ai.onnx opset the model imports (1 when absent, per the ONNX spec). */
  public static int opset(ModelProto model) {
    for (OperatorSetIdProto o : model.getOpsetImportList()) {
      if (o.getDomain().isEmpty() || o.getDomain().equals("ai.onnx")) {
        return (int) o.getVersion();
      }
    }
    return 1;
  }

  public static Graph read(ModelProto model) {
    int opset = opset(model);
    GraphProto g = model.getGraph();
    Graph graph = new Graph();
    graph.setSourceOpset(opset);
    Set<String> initNames = new HashSet<>();
    for (TensorProto t : g.getInitializerList()) {
      initNames.add(t.getName());
      graph.addInitializer(t, Tensors.elementCount(t) > INLINE_LIMIT);
    }
    for (ValueInfoProto in : g.getInputList()) {
      if (!initNames.contains(in.getName())) {
        graph.addInput(in.getName(), typeOf(in));
      }
    }
    for (NodeProto n : g.getNodeList()) {
      graph.reserve(n.getName());
    }
    for (NodeProto p : g.getNodeList()) {
      SortedMap<String, AttributeProto> attrs = new TreeMap<>();
      for (AttributeProto a : p.getAttributeList()) {
        attrs.put(a.getName(), a);
      }
      String name = p.getName().isEmpty() ? graph.freshValue(p.getOpType()) : p.getName();
      Node node = new Node(name, p.getOpType(), p.getDomain(), p.getInputList(), p.getOutputList(), attrs);
      graph.addImported(normalize(node, opset, graph));
    }
    for (ValueInfoProto out : g.getOutputList()) {
      graph.outputs().add(out.getName());
      graph.types().putIfAbsent(out.getName(), typeOf(out));
    }
    for (ValueInfoProto vi : g.getValueInfoList()) {
      if (vi.getType().hasTensorType()) {
        graph.types().putIfAbsent(vi.getName(), typeOf(vi));
      }
    }
    return graph;
  }

  static TensorType typeOf(ValueInfoProto vi) {
    var tt = vi.getType().getTensorType();
    if (!tt.hasShape()) {
      return new TensorType(tt.getElemType(), null);
    }
    List<Dim> dims = new ArrayList<>();
    for (TensorShapeProto.Dimension d : tt.getShape().getDimList()) {
      dims.add(
          d.hasDimValue()
              ? Dim.of(d.getDimValue())
              : d.hasDimParam() && !d.getDimParam().isEmpty()
                  ? Dim.symbol(d.getDimParam())
                  : Dim.unknown());
    }
    return TensorType.of(tt.getElemType(), dims);
  }

  /** Rewrites one node from its source opset into the opset-17 form. */
  private static Node normalize(Node n, int opset, Graph graph) {
    if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
      return n;
    }
    switch (n.opType()) {
      case "Unsqueeze", "Squeeze", "ReduceSum" -> {
        if (opset < 13 && n.has("axes")) {
          String axes = graph.longs(n.name() + "/axes", n.attrInts("axes"));
          return n.withoutAttribute("axes").withInput(1, axes);
        }
      }
      case "Split" -> {
        if (opset < 13 && n.has("split")) {
          String split = graph.longs(n.name() + "/split", n.attrInts("split"));
          return n.withoutAttribute("split").withInput(1, split);
        }
      }
      case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare" -> {
        if (opset >= 18) {
          return reduceAxesAsAttribute(n, graph);
        }
      }
      case "Clip", "Gelu", "RMSNormalization" -> {
        Node rewritten = breadthNormalize(n, opset, graph);
        if (rewritten != null) {
          return rewritten;
        }
      }
      case "Dropout" -> {
        // A host exported for inference: dropout is the identity (its mask output unused).
        return new Node(
            n.name(), "Identity", "", List.of(n.input(0)), List.of(n.output(0)), new TreeMap<>());
      }
      default -> {}
    }
    return n;
  }

  // ---- Breadth normalizations (issue 3) -------------------------------------------------------

  /** ai.onnx ops newer than opset 17 that the import does not rewrite into opset-17 forms. */
  private static final Set<String> NEWER_THAN_17 = Set.of(
      "Attention", "RotaryEmbedding", "GroupNormalization", "Mish", "Col2Im", "CenterCropPad",
      "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "AffineGrid", "ImageDecoder",
      "RegexFullMatch", "StringConcat", "StringSplit", "DeformConv", "Swish", "TensorScatter");

  /**
   * The nodes of {@code graph} that have no opset-{@value Graph#OPSET} form after import (ops
   * introduced later, or later attribute values), as "op at node 'name'"; empty when none.
   */
  public static List<String> newerThanOpset17(Graph graph) {
    List<String> found = new ArrayList<>();
    for (Node n : graph.nodes()) {
      if (!n.domain().isEmpty() && !n.domain().equals("ai.onnx")) {
        continue;
      }
      String mode = n.attrString("mode");
      String reduction = n.attrString("reduction");
      if (NEWER_THAN_17.contains(n.opType())
          || (n.opType().equals("Pad") && "wrap".equals(mode))
          || (n.opType().startsWith("Scatter") && ("max".equals(reduction) || "min".equals(reduction)))) {
        found.add(n.opType() + " at node '" + n.name() + "'");
      }
    }
    return found;
  }

  /**
   * Opset-18 reductions: constant axes (initializer or Constant node) become the attribute;
   * {@code noop_with_empty_axes} with no axes becomes Identity. Non-constant axes stay an input
   * (shape inference then leaves the result's shape unknown).
   */
  private static Node reduceAxesAsAttribute(Node n, Graph graph) {
    boolean noop = n.attrInt("noop_with_empty_axes", 0) == 1;
    Node plain = n.withoutAttribute("noop_with_empty_axes");
    List<Long> axes = n.hasInput(1) ? constantLongs(n.input(1), graph) : List.of();
    if (axes == null) {
      return n;
    }
    if (axes.isEmpty() && noop) {
      return new Node(n.name(), "Identity", "", List.of(n.input(0)), n.outputs(), new TreeMap<>());
    }
    SortedMap<String, AttributeProto> a = new TreeMap<>(plain.attributes());
    if (!axes.isEmpty()) {
      a.put("axes", Node.attr("axes", axes));
    }
    return new Node(n.name(), n.opType(), n.domain(), List.of(n.input(0)), n.outputs(), a);
  }

  private static @org.jspecify.annotations.Nullable List<Long> constantLongs(String value, Graph graph) {
    TensorProto t = graph.initializers().get(value);
    if (t == null) {
      Node p = graph.producer(value);
      t = p != null && p.opType().equals("Constant") ? p.attrTensor("value") : null;
    }
    return t == null ? null : Tensors.readLongs(t);
  }

  /** A float constant cast like {@code like} (whose type the import does not know yet). */
  private static String constLike(Graph graph, String base, double value, String like) {
    return graph.op(base + "/CastLike", "CastLike", List.of(graph.scalar(base, TensorType.FLOAT, value), like));
  }

  /**
   * Clip before opset 11 (min/max attributes) becomes the input form; Gelu (opset 20) and
   * RMSNormalization (opset 23) are decomposed into opset-17 ops, whose rules differentiate
   * them. Returns null when the node needs no rewrite.
   */
  private static @org.jspecify.annotations.Nullable Node breadthNormalize(Node n, int opset, Graph graph) {
    String x = n.input(0);
    switch (n.opType()) {
      case "Clip" -> {
        if (!n.has("min") && !n.has("max")) {
          return null;
        }
        String min = n.has("min") ? constLike(graph, n.name() + "/min", n.attrFloat("min", 0), x) : "";
        String max = n.has("max") ? constLike(graph, n.name() + "/max", n.attrFloat("max", 0), x) : "";
        Node plain = n.withoutAttribute("min").withoutAttribute("max");
        return max.isEmpty() ? plain.withInputs(List.of(x, min)) : plain.withInputs(List.of(x, min, max));
      }
      case "Gelu" -> {
        // 0.5·x·(1 + erf(x/√2)), or with approximate="tanh" 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        String approximate = n.attrString("approximate");
        String inner;
        if (approximate == null || approximate.equals("none")) {
          String scaled = graph.op(n.name() + "/Div", "Div", List.of(x, constLike(graph, n.name() + "/sqrt2", Math.sqrt(2), x)));
          inner = graph.op(n.name() + "/Erf", "Erf", List.of(scaled));
        } else if (approximate.equals("tanh")) {
          String cube = graph.op(n.name() + "/Cube", "Mul", List.of(x, graph.op(n.name() + "/Square", "Mul", List.of(x, x))));
          String poly = graph.op(n.name() + "/Add", "Add", List.of(x,
              graph.op(n.name() + "/Mul", "Mul", List.of(cube, constLike(graph, n.name() + "/c", 0.044715, x)))));
          String arg = graph.op(n.name() + "/Scale", "Mul", List.of(poly, constLike(graph, n.name() + "/k", Math.sqrt(2 / Math.PI), x)));
          inner = graph.op(n.name() + "/Tanh", "Tanh", List.of(arg));
        } else {
          throw new IllegalArgumentException("Gelu at node '" + n.name() + "' has unknown approximate='" + approximate + "'");
        }
        String onePlus = graph.op(n.name() + "/OnePlus", "Add", List.of(inner, constLike(graph, n.name() + "/one", 1, x)));
        String half = graph.op(n.name() + "/Half", "Mul", List.of(x, constLike(graph, n.name() + "/half", 0.5, x)));
        return new Node(n.name(), "Mul", "", List.of(half, onePlus), n.outputs(), new TreeMap<>());
      }
      case "RMSNormalization" -> {
        // x / √(mean(x², axes [axis, rank)) + ε) · scale, computed on x flattened to 2-D at axis
        // (so the rank need not be known here), in x's precision (stash_type is not honoured).
        String flat = graph.op(n.name() + "/Flatten", "Flatten", List.of(x), Node.attr("axis", n.attrInt("axis", -1)));
        String ms = graph.op(n.name() + "/ReduceMean", "ReduceMean",
            List.of(graph.op(n.name() + "/Square", "Mul", List.of(flat, flat))),
            Node.attr("axes", List.of(-1L)), Node.attr("keepdims", 1L));
        String eps = constLike(graph, n.name() + "/epsilon", n.attrFloat("epsilon", 1e-5f), x);
        String inv = graph.op(n.name() + "/Reciprocal", "Reciprocal",
            List.of(graph.op(n.name() + "/Sqrt", "Sqrt", List.of(graph.op(n.name() + "/AddEps", "Add", List.of(ms, eps))))));
        String normed = graph.op(n.name() + "/Reshape", "Reshape",
            List.of(graph.op(n.name() + "/Normalize", "Mul", List.of(flat, inv)), graph.op(n.name() + "/Shape", "Shape", List.of(x))));
        return new Node(n.name(), "Mul", "", List.of(normed, n.input(1)), n.outputs(), new TreeMap<>());
      }
      default -> {
        return null;
      }
    }
  }
}
