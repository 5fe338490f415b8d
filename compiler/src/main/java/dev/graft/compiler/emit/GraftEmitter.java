package dev.graft.compiler.emit;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.manifest.SiteUpdate;
import java.util.List;
import java.util.Map;

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
    ModelProto inferenceModel = OnnxExport.write(inference.graph(), modelName(spec, inference.variant()));
    ModelProto trainModel = OnnxExport.write(train.graph(), modelName(spec, train.variant()));
    ModelProto updateModel = OnnxExport.write(update.graph(), modelName(spec, update.variant()));
    ModelProto mergeModel = OnnxExport.write(merge.graph(), modelName(spec, merge.variant()));
    return new CompiledGraft(inferenceModel, trainModel, updateModel, mergeModel,
        ManifestWriter.write(spec, host, plan, hostInputs, inference, train, update, siteUpdates));
  }

  /** The ONNX model's graph name: {@code <graft>.infer}, {@code <graft>.train}, {@code <graft>.update}. */
  static String modelName(GraftSpec spec, GraphVariant variant) {
    return spec.name() + switch (variant) {
      case INFERENCE -> ".infer";
      case TRAIN -> ".train";
      case UPDATE -> ".update";
      case MERGE -> ".merge";
    };
  }
}
