package dev.graft.runtime.session;

import com.google.protobuf.CodedInputStream;
import dev.graft.runtime.FormatException;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.util.Collection;
import java.util.HashSet;
import java.util.Set;

/**
 * An inference graph with some of its inner tensors made graph outputs as well (ONNX Runtime
 * returns only graph outputs): what a calibration pass runs to read each site's input (CorDA's
 * covariances), and what {@code AdapterModel.siteFeatures} runs (SEMA's descriptors).
 */
public final class CalibrationGraph {
  private CalibrationGraph() {}

  /**
   * {@code inference} (serialized ONNX, named {@code source} in errors) with {@code tensors}, each
   * the output of one of its nodes, added as float outputs of unknown shape; {@code purpose} says in
   * errors what the manifest wants them for (e.g. "the covariance").
   */
  public static byte[] withOutputs(String source, byte[] inference, Collection<String> tensors, String purpose) {
    ModelProto model;
    try {
      CodedInputStream in = CodedInputStream.newInstance(inference);
      in.setSizeLimit(Integer.MAX_VALUE);
      model = ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new FormatException(source, "not an ONNX model: " + e.getMessage(), e);
    }
    Set<String> produced = new HashSet<>();
    model.getGraph().getNodeList().forEach(n -> produced.addAll(n.getOutputList()));
    Set<String> outputs = new HashSet<>();
    model.getGraph().getOutputList().forEach(o -> outputs.add(o.getName()));
    ModelProto.Builder b = model.toBuilder();
    for (String t : tensors) {
      if (!produced.contains(t)) {
        throw new FormatException(source, "the manifest asks for " + purpose + " of '" + t
            + "', which no node of the inference graph produces");
      }
      if (outputs.contains(t)) {
        continue;
      }
      b.getGraphBuilder().addOutput(ValueInfoProto.newBuilder().setName(t).setType(TypeProto.newBuilder()
          .setTensorType(TypeProto.Tensor.newBuilder().setElemType(elemType(model, t)))));
    }
    return b.build().toByteArray();
  }

  /** The element type recorded for {@code t} in the graph's value infos, else float. */
  private static int elemType(ModelProto model, String t) {
    for (ValueInfoProto v : model.getGraph().getValueInfoList()) {
      if (v.getName().equals(t) && v.getType().hasTensorType()) {
        return v.getType().getTensorType().getElemType();
      }
    }
    return 1;
  }
}
