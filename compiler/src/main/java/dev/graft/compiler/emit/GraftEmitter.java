package dev.graft.compiler.emit;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.passes.GatheredAdapters;
import dev.graft.spec.manifest.GatheredGraph;
import dev.graft.spec.manifest.GatheredTensor;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.SiteUpdate;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * Emit pass: writes each variant's graph as an ONNX model named {@code <graft>.<variant>} (the
 * host's weights as external data) and the manifest ({@link ManifestWriter}).
 *
 * <p>Needs: the finished variants, checked by {@link ParameterAgreement}. Guarantees: byte-identical
 * output for identical input.
 */
public final class GraftEmitter {
  private GraftEmitter() {}

  public static CompiledGraft emit(GraftSpec spec, HostModel host, Validation.Plan plan,
      Map<String, TensorType> hostInputs, VariantGraph inference, VariantGraph train, VariantGraph update,
      VariantGraph merge, List<SiteUpdate> siteUpdates) {
    return emit(spec, host, plan, hostInputs, inference, train, update, merge, siteUpdates, null, List.of());
  }

  /**
   * With the gathered graph ({@code gathered} null: not compiled) and its stacked inputs, recorded
   * in the manifest's {@code gathered}.
   */
  public static CompiledGraft emit(GraftSpec spec, HostModel host, Validation.Plan plan,
      Map<String, TensorType> hostInputs, VariantGraph inference, VariantGraph train, VariantGraph update,
      VariantGraph merge, List<SiteUpdate> siteUpdates, @Nullable Graph gathered, List<GatheredTensor> stacked) {
    ModelProto inferenceModel = OnnxExport.write(inference.graph(), modelName(spec, inference.variant()));
    ModelProto trainModel = OnnxExport.write(train.graph(), modelName(spec, train.variant()));
    ModelProto updateModel = OnnxExport.write(update.graph(), modelName(spec, update.variant()));
    ModelProto mergeModel = OnnxExport.write(merge.graph(), modelName(spec, merge.variant()));
    Manifest manifest = ManifestWriter.write(spec, host, plan, hostInputs, inference, train, update, siteUpdates);
    if (gathered == null) {
      return new CompiledGraft(inferenceModel, trainModel, updateModel, mergeModel, manifest);
    }
    GatheredGraph record = GatheredGraph.newBuilder()
        .setGraph(spec.name() + CompiledGraft.GATHERED_SUFFIX)
        .setAdapterIndex(GatheredAdapters.ADAPTER_INDEX)
        .addAllTensors(stacked)
        .setLogits(gathered.outputs().get(0))
        .setHostOutput(gathered.outputs().get(gathered.outputs().size() - 1))
        .build();
    return new CompiledGraft(inferenceModel, trainModel, updateModel, mergeModel,
        manifest.toBuilder().setGathered(record).build(), OnnxExport.write(gathered, modelName(spec, GraphVariant.GATHERED)));
  }

  /**
   * The ONNX model's graph name: {@code <graft>.infer}, {@code <graft>.train}, {@code
   * <graft>.update}, {@code <graft>.gathered}.
   */
  static String modelName(GraftSpec spec, GraphVariant variant) {
    return spec.name() + switch (variant) {
      case INFERENCE -> ".infer";
      case TRAIN -> ".train";
      case UPDATE -> ".update";
      case MERGE -> ".merge";
      case GATHERED -> ".gathered";
    };
  }
}
