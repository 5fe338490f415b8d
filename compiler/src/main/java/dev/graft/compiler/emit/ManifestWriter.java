package dev.graft.compiler.emit;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.lora.DyLoraKind;
import dev.graft.compiler.passes.AdamWUpdate;
import dev.graft.compiler.passes.CompositionPlacement;
import dev.graft.compiler.plan.AdapterConfig;
import dev.graft.compiler.plan.CompositionPlan;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.tasks.TaskKind;
import dev.graft.compiler.tasks.TaskPass;
import dev.graft.spec.manifest.AdamW;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.ExportDefault;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.SiteUpdate;
import dev.graft.spec.manifest.TrainStep;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Emit pass, manifest part: the manifest that names the tensors of a graft's graphs — host
 * inputs and initializers, parameters, adapters and compositions with their PEFT configs, the
 * task, the optimizer, the training step's names, auxiliary losses and saved activations.
 *
 * <p>Needs: the plan and the finished, agreeing variants ({@link ParameterAgreement}). Guarantees:
 * a deterministic manifest (host initializers sorted; everything else in declaration and
 * placement order).
 */
public final class ManifestWriter {
  private ManifestWriter() {}

  /**
   * The modules a PEFT config's {@code target_modules} resolves against, as the runtime resolves
   * them: the host's linear modules and every adapter's sites.
   */
  static List<String> peftModules(Validation.Plan plan) {
    TreeSet<String> out = new TreeSet<>(plan.linearModules());
    plan.adapters().forEach(a -> a.sites().forEach(s -> out.add(s.modulePath())));
    return List.copyOf(out);
  }

  /**
   * @param hostInputs the host's inputs as imported, before any variant added its own
   * @param inference the inference variant (its parameters and output are the manifest's)
   * @param train the training-step variant
   * @param update the update variant, whose outputs {@code siteUpdates} name
   */
  public static Manifest write(GraftSpec spec, HostModel host, Validation.Plan plan, Map<String, TensorType> hostInputs,
      VariantGraph inference, VariantGraph train, VariantGraph update, List<SiteUpdate> siteUpdates) {
    TaskKind task = TaskKind.of(spec.task());
    TreeSet<String> external = new TreeSet<>(inference.graph().externalInitializers());
    external.addAll(train.graph().externalInitializers());
    external.addAll(update.graph().externalInitializers());
    external.addAll(inference.placement().hostSources());
    TrainStep.Builder names = AdamWUpdate.NAMES.toBuilder().setLabels(task.labelsName());
    if (train.graph().inputs().containsKey(Placement.SEED)) {
      names.setSeed(Placement.SEED);
    }
    Manifest.Builder manifest = Manifest.newBuilder()
        .setName(spec.name())
        .setHost(spec.host())
        .setHostSha256(host.sha256())
        .addAllHostInitializers(external)
        .addAllInputs(hostInputs(spec, hostInputs, HostInputLimits.find(inference.graph(), hostInputs.keySet()),
            KeyValueCaches.pastInputs(hostInputs, inference.graph().outputs()), inference.placement().prependedTokens()))
        .addAllKeyValues(KeyValueCaches.of(hostInputs, inference.graph().outputs()))
        .addAllParameters(exportNames(nestedRanks(inference.parameters(), plan), plan))
        .addAllAdapters(adapters(plan, spec))
        .addAllCompositions(compositions(plan))
        .setAdapterConfig(AdapterConfig.json(plan.adapters(), spec.task(), task.hasHead(), peftModules(plan)))
        .setLoraExportConfig(AdapterConfig.dyLoraAsLora(plan.adapters(), spec.task(), task.hasHead(), peftModules(plan)))
        .addAllLinearModules(plan.linearModules())
        .setOptimizer(adamW(spec.optimizer()))
        .setTrain(names)
        .addAllAuxiliaryLosses(train.placement().auxiliaryLosses().stream().map(Placement.AuxiliaryLoss::name).toList())
        .setLogits(inference.graph().outputs().get(0))
        .setTask(withEmbedding(task.manifestTask(spec.task(), plan.hostOutput(), plan.hidden()), inference, plan));
    task.manifestHead(spec.task(), plan.hostOutput(), plan.hidden()).ifPresent(manifest::setHead);
    return manifest
        .setInferenceGraph(spec.name() + CompiledGraft.INFERENCE_SUFFIX)
        .setTrainGraph(spec.name() + CompiledGraft.TRAIN_SUFFIX)
        .addAllSavedActivations(train.savedActivations())
        .setUpdateGraph(spec.name() + CompiledGraft.UPDATE_SUFFIX)
        .setMergeGraph(spec.name() + CompiledGraft.MERGE_SUFFIX)
        .addAllSiteUpdates(siteUpdates)
        .build();
  }

  /** The task's record with the inference graph's embedding output and its width, where it has one. */
  private static dev.graft.spec.manifest.Task withEmbedding(dev.graft.spec.manifest.Task task, VariantGraph inference,
      Validation.Plan plan) {
    return TaskPass.embeddingOutput(inference.graph())
        .map(name -> task.toBuilder().setEmbeddingOutput(name).setEmbeddingSize(plan.hidden()).build())
        .orElse(task);
  }

  /** An IR dimension as the manifest writes it: its size, its symbol, or {@code "?"} when unknown. */
  public static dev.graft.spec.manifest.Dim dim(Dim d) {
    return d.isKnown()
        ? dev.graft.spec.manifest.Dim.newBuilder().setSize(d.size()).build()
        : dev.graft.spec.manifest.Dim.newBuilder().setSymbol(d.isSymbol() ? d.symbolName() : "?").build();
  }

  /**
   * @param virtualTokens the tokens adapters put before the caller's ({@link
   *     dev.graft.compiler.kinds.Placement#prependedTokens}): they take rows of the position table
   */
  private static List<HostInput> hostInputs(GraftSpec spec, Map<String, TensorType> inputs,
      Map<String, HostInputLimits.Limit> limits, Set<String> past, int virtualTokens) {
    List<HostInput> out = new ArrayList<>();
    inputs.forEach((name, type) -> {
      if (past.contains(name)) {
        return;
      }
      HostInput.Builder b = HostInput.newBuilder().setName(name).setElemType(type.elemType())
          .setMask(name.equals(TaskKind.MASK_INPUT));
      HostInputLimits.Limit limit = limits.get(name);
      if (limit != null && (type.elemType() == TensorType.INT64 || type.elemType() == TensorType.INT32)) {
        long positions = limit.maxSequence();
        if (positions > 0 && virtualTokens >= positions) {
          throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.VIRTUAL_TOKENS_FILL_POSITIONS, spec.source(),
              null, virtualTokens, positions, name, positions - 1)));
        }
        b.setIndexLimit(limit.indexLimit()).setMaxSequence(positions > 0 ? positions - virtualTokens : 0)
            .setVirtualTokens(positions > 0 ? virtualTokens : 0);
      }
      if (type.hasRank()) {
        type.dims().forEach(d -> b.addShape(dim(d)));
      }
      out.add(b.build());
    });
    return out;
  }

  private static List<Adapter> adapters(Validation.Plan plan, GraftSpec spec) {
    List<Adapter> out = new ArrayList<>();
    for (PlannedAdapter a : plan.adapters()) {
      Adapter.Builder b = Adapter.newBuilder()
          .setKind(a.kind().id())
          .setTarget(a.spec().target())
          .addAllLayers(a.spec().layers());
      a.spec().options().forEach((k, v) -> b.putOptions(k, AdapterOption.text(v)));
      a.sites().forEach(s -> b.addSites(s.modulePath()));
      b.setTrained(!plan.compositions().frozen().contains(a.spec().name()));
      if (a.kind() instanceof DyLoraKind) {
        b.setMaxRank(a.spec().intOption("rank"));
      }
      if (a.spec().isNamed()) {
        b.setName(a.spec().name())
            .setConfig(AdapterConfig.json(List.of(a), spec.task(), false, peftModules(plan)));
        if (CompositionPlacement.placesHere(a)) {
          b.setGate(Placement.GATE_PREFIX + a.spec().name());
        }
      }
      out.add(b.build());
    }
    return out;
  }

  /**
   * The parameters with their rank axes for the runtime's cut to a lower rank (DyLoRA's A {@code
   * [in, r]} over axis 1, B {@code [r, out]} over axis 0 and rescaled); the others unchanged.
   */
  private static List<Parameter> nestedRanks(List<Parameter> params, Validation.Plan plan) {
    List<Parameter> out = new ArrayList<>();
    for (Parameter p : params) {
      boolean nested = p.getAdapter() > 0 && plan.adapters().get(p.getAdapter() - 1).kind() instanceof DyLoraKind;
      if (nested && p.getRole() == ParameterRole.LORA_A) {
        out.add(p.toBuilder().setRankAxis(2).build());
      } else if (nested && p.getRole() == ParameterRole.LORA_B) {
        out.add(p.toBuilder().setRankAxis(1).setRankRescaled(true).build());
      } else {
        out.add(p);
      }
    }
    return out;
  }

  /**
   * Each parameter's {@code export_name}: PEFT's module-state name, as ONNX Runtime's generative-AI
   * tooling names LoRA inputs (Olive's {@code ExtractAdapters}: {@code
   * model.layers.0.self_attn.q_proj.lora_A.weight}): the save key without {@code
   * base_model.model.}, with {@code .<name>} before its last segment for a named adapter; the
   * parameter's own name where it has no save key, or where that name is taken.
   */
  private static List<Parameter> exportNames(List<Parameter> params, Validation.Plan plan) {
    Set<String> taken = new HashSet<>();
    params.forEach(p -> taken.add(p.getName()));
    Set<String> used = new HashSet<>();
    List<Parameter> out = new ArrayList<>();
    for (Parameter p : params) {
      String name = p.getName();
      if (!p.getSaveKey().isEmpty()) {
        String key = p.getSaveKey().startsWith(Placement.PEFT_PREFIX)
            ? p.getSaveKey().substring(Placement.PEFT_PREFIX.length()) : p.getSaveKey();
        String adapter = p.getAdapter() > 0 ? plan.adapters().get(p.getAdapter() - 1).spec().name() : "";
        if (!adapter.isEmpty()) {
          int dot = key.lastIndexOf('.');
          key = dot < 0 ? key + "." + adapter : key.substring(0, dot) + "." + adapter + key.substring(dot);
        }
        if (!used.contains(key) && (!taken.contains(key) || key.equals(name))) {
          name = key;
        }
      }
      used.add(name);
      out.add(p.toBuilder().setExportName(name).setExportDefault(exportDefault(p)).build());
    }
    return out;
  }

  /** Empty along the rank axis; else the initial value where it is not random; else zeros (or as the kind set it). */
  private static ExportDefault exportDefault(Parameter p) {
    if (p.getExportDefault() != ExportDefault.EXPORT_DEFAULT_UNSPECIFIED) {
      return p.getExportDefault();
    }
    if (p.getExportRankAxis() > 0) {
      return ExportDefault.EXPORT_DEFAULT_EMPTY;
    }
    return switch (p.getInit()) {
      case ZEROS, ONES, CONSTANT, HOST_COPY, HOST_COLUMN_NORM, IDENTITY -> ExportDefault.EXPORT_DEFAULT_INITIAL;
      default -> ExportDefault.EXPORT_DEFAULT_ZEROS;
    };
  }

  private static List<dev.graft.spec.manifest.Composition> compositions(Validation.Plan plan) {
    List<dev.graft.spec.manifest.Composition> out = new ArrayList<>();
    for (CompositionPlan.Resolved r : plan.compositions().blocks()) {
      PlannedAdapter first = CompositionPlan.leaves(r.root()).get(0).adapter();
      dev.graft.spec.manifest.Composition.Builder b = dev.graft.spec.manifest.Composition.newBuilder()
          .setExpression(r.composition().expression());
      first.sites().forEach(s -> b.addSites(s.modulePath()));
      out.add(b.build());
    }
    return out;
  }

  private static AdamW adamW(AdamWSpec o) {
    return AdamW.newBuilder().setBeta1(o.beta1()).setBeta2(o.beta2()).setEpsilon(o.epsilon())
        .setWeightDecay(o.weightDecay()).build();
  }
}
