package dev.graft.runtime.export;

import com.google.protobuf.ByteString;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.session.HostWeights;
import dev.graft.runtime.state.ParameterInit;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TensorShapeProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The unmerged export: the host plus the adapter graph (the graft's inference graph), runnable by
 * ONNX Runtime alone, with every adapter parameter a <b>named graph input</b> under its manifest
 * {@code export_name} (as ONNX Runtime's generative-AI tooling names LoRA inputs: {@code
 * <module>.lora_A.weight}, see docs/exporting-and-serving.md) and an initializer of the same name
 * as its default ({@code export_default}): size 0 along the rank axis (the symbolic dim {@value
 * #RANK_DIM}), or the kind's identity value, so the graph runs as the plain host when no adapter
 * is fed. A named adapter's gate is an input too, defaulting to its current state. The head's
 * parameters are fixed initializers of their current values. Weights go to {@code <model>.data}
 * as in {@link MergedExport}.
 */
public final class UnmergedExport {
  private static final System.Logger LOG = System.getLogger(UnmergedExport.class.getName());
  /** The symbolic dimension of every rank axis, as Olive's {@code ExtractAdapters} names it. */
  public static final String RANK_DIM = "lora_r";
  private static final int FLOAT = 1;
  private static final int BOOL = 9;

  private UnmergedExport() {}

  /** Writes the unmerged export of {@code source} into folder {@code dir} (replacing it as a whole). */
  public static void write(MergedExport.Source source, Path dir, ExportOptions options) {
    Manifest m = source.graphs().manifest();
    if (!options.includeHead()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "graft '" + m.getName() + "': the unmerged export is the"
          + " inference graph and outputs " + m.getLogits() + "; expected includeHead true, given false (export merged"
          + " without the head for the host's own outputs)");
    }
    if (options.requireMerged()) {
      LOG.log(System.Logger.Level.WARNING, "export " + m.getName() + ": requireMerged is ignored by the unmerged export");
    }
    if (options.dyLoraRank() > 0) {
      LOG.log(System.Logger.Level.WARNING, "export " + m.getName() + ": dyLoraRank is ignored by the unmerged export"
          + " (feed the adapter at any rank along " + RANK_DIM + ")");
    }
    ModelProto inference = MergedExport.parse(m.getInferenceGraph(), source.graphs().inferenceGraph());
    GraphProto graph = inference.getGraph();
    Map<String, Parameter> params = new HashMap<>();
    Map<String, String> rename = new HashMap<>();
    for (Parameter p : m.getParametersList()) {
      params.put(p.getName(), p);
      if (p.getAdapter() > 0) {
        String to = p.getExportName().isEmpty() ? p.getName() : p.getExportName();
        rename.put(p.getName(), to);
      }
    }
    Map<String, String> gates = new HashMap<>();
    for (Adapter a : m.getAdaptersList()) {
      if (!a.getGate().isEmpty()) {
        gates.put(a.getGate(), a.getName());
      }
    }
    // The export outputs what the inference graph outputs for its callers, without the embedding
    // (an output Graft's own embed reads): the node that only copies it out goes with it.
    String embedding = m.getTask().getEmbeddingOutput();
    GraphProto.Builder out = graph.toBuilder().clearNode().clearInput().clearInitializer().clearOutput();
    graph.getOutputList().stream().filter(o -> !o.getName().equals(embedding)).forEach(out::addOutput);
    out.clearValueInfo();
    graph.getValueInfoList().stream().filter(v -> !v.getName().equals(embedding)).forEach(out::addValueInfo);
    for (NodeProto n : graph.getNodeList()) {
      if (!embedding.isEmpty() && n.getOutputList().equals(List.of(embedding))) {
        continue;
      }
      NodeProto.Builder b = n.toBuilder();
      for (int i = 0; i < b.getInputCount(); i++) {
        String to = rename.get(b.getInput(i));
        if (to != null) {
          b.setInput(i, to);
        }
      }
      out.addNode(b);
    }
    ExportFolder folder = new ExportFolder();
    for (ValueInfoProto in : graph.getInputList()) {
      String name = in.getName();
      Parameter p = params.get(name);
      if (p == null) {
        out.addInput(in);
        if (gates.containsKey(name)) {
          out.addInitializer(TensorProto.newBuilder().setName(name).setDataType(BOOL).setRawData(
              ByteString.copyFrom(new byte[] {(byte) (source.activeAdapters().contains(gates.get(name)) ? 1 : 0)})));
        }
        continue;
      }
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      float[] current = source.parameters().get(name);
      if (p.getAdapter() == 0) {
        folder.add(name, FLOAT, shape, MergedExport.floats(current));
        continue;
      }
      String exported = rename.get(name);
      out.addInput(input(exported, shape, p.getExportRankAxis()));
      switch (p.getExportDefault()) {
        case EXPORT_DEFAULT_EMPTY -> {
          long[] empty = shape.clone();
          empty[p.getExportRankAxis() - 1] = 0;
          TensorProto.Builder t = TensorProto.newBuilder().setName(exported).setDataType(FLOAT).setRawData(ByteString.EMPTY);
          for (long d : empty) {
            t.addDims(d);
          }
          out.addInitializer(t);
        }
        case EXPORT_DEFAULT_INITIAL -> folder.add(exported, FLOAT, shape,
            MergedExport.floats(ParameterInit.initialValues(p, current.length, 0, source.host())));
        case EXPORT_DEFAULT_ZEROS -> {
          // The compiler's fallback for a parameter with a random initial value and no rank axis (a
          // user-defined kind's): zeros make the graph the plain host only if the kind is the identity there.
          LOG.log(System.Logger.Level.WARNING, "export " + m.getName() + ": input '" + exported + "' defaults to zeros;"
              + " the export run without an adapter is the plain host only if its kind is the identity at zero");
          folder.add(exported, FLOAT, shape, MergedExport.floats(new float[current.length]));
        }
        case EXPORT_DEFAULT_CURRENT -> folder.add(exported, FLOAT, shape, MergedExport.floats(current));
        default -> throw new FormatException(m.getName(), "parameter '" + name + "' has no export_default ("
            + p.getExportDefault() + "); recompile the graft with this Graft");
      }
    }
    for (TensorProto t : graph.getInitializerList()) {
      if (t.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
        out.addInitializer(t);
        continue;
      }
      HostWeights.Weight w = source.host().weights().get(t.getName());
      if (w == null) {
        throw new FormatException(m.getInferenceGraph(), "initializer '" + t.getName()
            + "' is external data but not among the host weights read");
      }
      folder.add(t.getName(), w.dataType(), w.dims(), w.data());
    }
    folder.write(dir, options, "export " + m.getName(), inference, out);
    LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "export %s: unmerged %s and %s written to %s (%d adapter inputs)",
        m.getName(), options.modelFile(), options.dataFile(), dir, rename.size()));
  }

  /** A float input of {@code shape}, its rank axis (1-based, 0: none) the symbolic {@value #RANK_DIM}. */
  private static ValueInfoProto input(String name, long[] shape, int rankAxis) {
    TensorShapeProto.Builder s = TensorShapeProto.newBuilder();
    for (int i = 0; i < shape.length; i++) {
      s.addDim(i == rankAxis - 1 ? TensorShapeProto.Dimension.newBuilder().setDimParam(RANK_DIM)
          : TensorShapeProto.Dimension.newBuilder().setDimValue(shape[i]));
    }
    return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(
        TypeProto.Tensor.newBuilder().setElemType(FLOAT).setShape(s))).build();
  }
}
