package dev.graft.compiler.emit;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.passes.GatheredAdapters;
import dev.graft.spec.manifest.DataParallelGraphs;
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
    return emit(spec, host, plan, hostInputs, inference, train, update, merge, siteUpdates, gathered, stacked,
        List.of());
  }

  /**
   * With the data-parallel halves of the training step ({@code halves}: the {@link
   * GraphVariant#GRADIENT} then the {@link GraphVariant#APPLY} graph, or empty: not compiled),
   * recorded in the manifest's {@code data_parallel}.
   */
  public static CompiledGraft emit(GraftSpec spec, HostModel host, Validation.Plan plan,
      Map<String, TensorType> hostInputs, VariantGraph inference, VariantGraph train, VariantGraph update,
      VariantGraph merge, List<SiteUpdate> siteUpdates, @Nullable Graph gathered, List<GatheredTensor> stacked,
      List<VariantGraph> halves) {
    CompiledGraft graft = emitted(spec, host, plan, hostInputs, inference, train, update, merge, siteUpdates, gathered,
        stacked);
    if (halves.isEmpty()) {
      return graft;
    }
    VariantGraph gradient = halves.get(0);
    VariantGraph apply = halves.get(1);
    DataParallelGraphs record = DataParallelGraphs.newBuilder()
        .setGradientGraph(spec.name() + CompiledGraft.GRADIENT_SUFFIX)
        .setApplyGraph(spec.name() + CompiledGraft.APPLY_SUFFIX)
        .setGradientSuffix(GraftCompiler.GRADIENT_SUFFIX)
        .build();
    return new CompiledGraft(graft.inference(), graft.train(), graft.update(), graft.merge(),
        graft.manifest().toBuilder().setDataParallel(record).build(), graft.gathered(),
        OnnxExport.write(gradient.graph(), modelName(spec, GraphVariant.GRADIENT)),
        OnnxExport.write(apply.graph(), modelName(spec, GraphVariant.APPLY)));
  }

  private static CompiledGraft emitted(GraftSpec spec, HostModel host, Validation.Plan plan,
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
   * <graft>.update}, {@code <graft>.gathered}, {@code <graft>.gradient}, {@code <graft>.apply}.
   */
  static String modelName(GraftSpec spec, GraphVariant variant) {
    return spec.name() + switch (variant) {
      case INFERENCE -> ".infer";
      case TRAIN -> ".train";
      case UPDATE -> ".update";
      case MERGE -> ".merge";
      case GATHERED -> ".gathered";
      case GRADIENT -> ".gradient";
      case APPLY -> ".apply";
    };
  }
}
