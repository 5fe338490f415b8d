package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.util.Set;
import java.util.TreeSet;

/**
 * Emit pass: writes the IR as an ONNX model (IR version 8, ai.onnx opset {@value
 * Graph#OPSET}). External initializers are written as declarations only (name, type, dims and
 * an external-data reference to {@link #EXTERNAL_LOCATION}, which does not exist): the runtime
 * supplies their data from the host model. A graph with {@link FusedOps} carries their ONNX
 * functions, imports the {@value Graph#GRAFT_DOMAIN} opset and states their outputs' types.
 */
public final class OnnxExport {
  public static final String EXTERNAL_LOCATION = "graft-host-weights.bin";

  private OnnxExport() {}

  private static boolean isStopGradient(Node n) {
    return n.domain().equals(Graph.GRAFT_DOMAIN) && n.opType().equals(Graph.STOP_GRADIENT);
  }

  public static ModelProto write(Graph graph, String name) {
    GraphProto.Builder g = GraphProto.newBuilder().setName(name);
    boolean usesMicrosoft = false;
    Set<String> fused = new TreeSet<>();
    for (Node n : graph.nodes()) {
      usesMicrosoft |= n.domain().equals(Graph.MS_DOMAIN);
      if (FusedOps.isFused(n)) {
        fused.add(n.opType());
        // ONNX Runtime cannot infer a custom kernel's output types; its fusions around the node
        // (a following scale folded into a MatMul) need them, so the graph states them.
        for (String out : n.outputs()) {
          TensorType t = graph.type(out);
          if (t != null) {
            g.addValueInfo(valueInfo(out, t));
          }
        }
      }
      g.addNode(
          NodeProto.newBuilder()
              .setName(n.name())
              // Graft's stop-gradient is the identity once written: ONNX Runtime runs an Identity.
              .setOpType(isStopGradient(n) ? "Identity" : n.opType())
              .setDomain(isStopGradient(n) ? "" : n.domain())
              .addAllInput(n.inputs())
              .addAllOutput(n.outputs())
              .addAllAttribute(n.attributes().values()));
    }
    for (TensorProto t : graph.initializers().values()) {
      g.addInitializer(
          graph.externalInitializers().contains(t.getName()) ? externalDeclaration(t) : t);
    }
    graph.inputs().forEach((in, type) -> g.addInput(valueInfo(in, type)));
    for (String out : graph.outputs()) {
      TensorType t = graph.type(out);
      g.addOutput(
          t == null ? ValueInfoProto.newBuilder().setName(out).build() : valueInfo(out, t));
    }
    ModelProto.Builder m =
        ModelProto.newBuilder()
            .setIrVersion(8)
            .setProducerName("graft")
            .setGraph(g)
            .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(Graph.OPSET));
    if (usesMicrosoft) {
      m.addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(Graph.MS_DOMAIN).setVersion(1));
    }
    if (!fused.isEmpty()) {
      m.addOpsetImport(OperatorSetIdProto.newBuilder().setDomain(Graph.GRAFT_DOMAIN).setVersion(FusedOps.VERSION));
      fused.forEach(op -> m.addFunctions(FusedOps.function(op)));
    }
    return m.build();
  }

  private static TensorProto externalDeclaration(TensorProto t) {
    long bytes = Tensors.elementCount(t) * bytesPerElement(t.getDataType());
    return TensorProto.newBuilder()
        .setName(t.getName())
        .setDataType(t.getDataType())
        .addAllDims(t.getDimsList())
        .setDataLocation(TensorProto.DataLocation.EXTERNAL)
        .addExternalData(entry("location", EXTERNAL_LOCATION))
        .addExternalData(entry("offset", "0"))
        .addExternalData(entry("length", Long.toString(bytes)))
        .build();
  }

  private static StringStringEntryProto entry(String k, String v) {
    return StringStringEntryProto.newBuilder().setKey(k).setValue(v).build();
  }

  public static int bytesPerElement(int elemType) {
    return switch (elemType) {
      case TensorType.DOUBLE, TensorType.INT64, 13 -> 8;
      case TensorType.FLOAT, TensorType.INT32, 12 -> 4;
      case TensorType.FLOAT16, TensorType.BFLOAT16, 4, 5 -> 2;
      default -> 1;
    };
  }

  public static ValueInfoProto valueInfo(String name, TensorType type) {
    TypeProto.Tensor.Builder tt = TypeProto.Tensor.newBuilder().setElemType(type.elemType());
    if (type.hasRank()) {
      TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
      for (Dim d : type.dims()) {
        TensorShapeProto.Dimension.Builder db = TensorShapeProto.Dimension.newBuilder();
        if (d.isKnown()) {
          db.setDimValue(d.size());
        } else if (d.isSymbol()) {
          db.setDimParam(d.symbolName());
        }
        shape.addDim(db);
      }
      tt.setShape(shape);
    }
    return ValueInfoProto.newBuilder()
        .setName(name)
        .setType(TypeProto.newBuilder().setTensorType(tt))
        .build();
  }
}
