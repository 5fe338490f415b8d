package dev.graft.dsl.ir;

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
  public static final int MAX_OPSET = 21;

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
        if (opset >= 18 && n.hasInput(1)) {
          TensorProto axes = graph.initializers().get(n.input(1));
          if (axes != null) {
            SortedMap<String, AttributeProto> a = new TreeMap<>(n.attributes());
            a.put("axes", Node.attr("axes", Tensors.readLongs(axes)));
            return new Node(n.name(), n.opType(), n.domain(), List.of(n.input(0)), n.outputs(), a);
          }
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
}
