package dev.graft.compiler;

import dev.graft.compiler.passes.AdamWUpdate;
import dev.graft.compiler.passes.AdapterPlacement;
import dev.graft.compiler.passes.CompositionPlacement;
import dev.graft.compiler.passes.SavedActivations;
import dev.graft.compiler.plan.AdapterConfig;
import dev.graft.compiler.plan.CompositionPlan;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.tasks.TaskPass;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.lora.DyLoraKind;
import dev.graft.compiler.autodiff.Autodiff;
import dev.graft.compiler.autodiff.GradientRegistry;
import dev.graft.compiler.autodiff.MissingGradientException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.AdamW;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.TrainStep;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.Pooling;
import dev.graft.spec.manifest.SavedActivation;
import dev.graft.spec.manifest.Task;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Compiles a declaration against its host: import → validate → place adapters → add head and
 * loss → infer shapes → autodiff → optimizer → emit. Never throws for a bad declaration: every
 * problem found comes back as a diagnostic.
 */
public final class GraftCompiler {
  /** Suffix of the gradient outputs added by {@link #compile(GraftSpec, HostModel, boolean)}. */
  public static final String GRADIENT_SUFFIX = ".grad";

  private GraftCompiler() {}

  public static CompileResult compile(GraftSpec spec, HostModel host) {
    return compile(spec, host, false);
  }

  /**
   * @param exposeGradients also output each parameter's gradient from the training step as
   *     {@code <parameter>.grad} (for gradient checks and debugging)
   */
  public static CompileResult compile(GraftSpec spec, HostModel host, boolean exposeGradients) {
    Graph inference = imported(host);
    Validation validation = new Validation();
    Validation.Plan plan = validation.check(spec, host, inference);
    if (!validation.errors().isEmpty()) {
      return CompileResult.failed(validation.errors());
    }
    Map<String, TensorType> hostInputs = new LinkedHashMap<>(inference.inputs());

    int elem = hostElemType(inference);
    Placement placed = AdapterPlacement.place(inference, plan.adapters(), plan.compositions(), false, elem);
    List<Parameter> params = new ArrayList<>(placed.parameters());
    params.addAll(TaskPass.add(inference, spec.task(), plan.hostOutput(), plan.hidden(), false));
    ShapeInference.run(inference);
    inference.removeUnused();

    Graph train = imported(host);
    Placement placedTrain = AdapterPlacement.place(train, plan.adapters(), plan.compositions(), true, elem);
    TaskPass.add(train, spec.task(), plan.hostOutput(), plan.hidden(), true, placedTrain.auxiliaryLosses());
    ShapeInference.run(train);
    List<String> names = params.stream().filter(p -> !p.getFrozen()).map(Parameter::getName).toList();
    Set<String> forward = new HashSet<>();
    train.nodes().forEach(n -> forward.add(n.name()));
    Map<String, String> grads;
    try {
      grads = Autodiff.differentiate(train, TaskPass.LOSS, names);
    } catch (MissingGradientException e) {
      return CompileResult.failed(List.of(Diagnostic.of(ErrorCode.NO_GRADIENT_RULE, spec.source(), null,
          e.node().opType(), e.node().domain(), Graph.OPSET, e.node().name(),
          GradientRegistry.differentiableOps() + " (" + e.getMessage() + ")")));
    }
    if (exposeGradients) {
      for (String p : names) {
        train.outputs().add(train.opTo(p + GRADIENT_SUFFIX, "/grad/" + p + "/out", "Identity", List.of(grads.get(p))));
      }
    }
    List<SavedActivation> saved = SavedActivations.find(train, forward);
    AdamWUpdate.add(train, spec.optimizer(), params, grads);
    train.removeUnused();
    ShapeInference.run(train);

    ModelProto inferenceModel = OnnxExport.write(inference, spec.name() + ".infer");
    ModelProto trainModel = OnnxExport.write(train, spec.name() + ".train");
    TreeSet<String> external = new TreeSet<>(inference.externalInitializers());
    external.addAll(train.externalInitializers());
    external.addAll(placed.hostSources());
    TrainStep.Builder names2 = AdamWUpdate.NAMES.toBuilder().setLabels(TaskPass.labelsName(spec.task()));
    if (train.inputs().containsKey(Placement.SEED)) {
      names2.setSeed(Placement.SEED);
    }
    Manifest.Builder manifest = Manifest.newBuilder()
        .setName(spec.name())
        .setHost(spec.host())
        .setHostSha256(host.sha256())
        .addAllHostInitializers(external)
        .addAllInputs(hostInputs(hostInputs))
        .addAllParameters(nestedRanks(params, plan))
        .addAllAdapters(adapters(plan, spec))
        .addAllCompositions(compositions(plan))
        .setAdapterConfig(AdapterConfig.json(plan.adapters(), spec.task(), spec.host(), TaskPass.headOutputs(spec.task()) > 0))
        .setLoraExportConfig(AdapterConfig.dyLoraAsLora(plan.adapters(), spec.task(), spec.host(), TaskPass.headOutputs(spec.task()) > 0))
        .setOptimizer(adamW(spec.optimizer()))
        .setTrain(names2)
        .addAllAuxiliaryLosses(placedTrain.auxiliaryLosses().stream().map(Placement.AuxiliaryLoss::name).toList())
        .setLogits(inference.outputs().get(0))
        .setTask(task(spec.task(), plan));
    if (TaskPass.headOutputs(spec.task()) > 0) {
      manifest.setHead(ClassificationHead.newBuilder()
          .setNumLabels(TaskPass.headOutputs(spec.task()))
          .setPooling(TaskPass.pooling(spec.task()) == ClassificationSpec.Pooling.MEAN ? Pooling.MEAN : Pooling.FIRST_TOKEN)
          .setHostOutput(plan.hostOutput())
          .setHiddenSize(plan.hidden()));
    }
    manifest
        .setInferenceGraph(spec.name() + CompiledGraft.INFERENCE_SUFFIX)
        .setTrainGraph(spec.name() + CompiledGraft.TRAIN_SUFFIX)
        .addAllSavedActivations(saved);
    return new CompileResult(new CompiledGraft(inferenceModel, trainModel, manifest.build()), List.of());
  }

  /** Import pass plus shape inference: the IR every compilation starts from (and the host inspector reads). */
  public static Graph imported(HostModel host) {
    Graph g = OnnxImport.read(host.model());
    ShapeInference.run(g);
    return g;
  }

  private static List<HostInput> hostInputs(Map<String, TensorType> inputs) {
    List<HostInput> out = new ArrayList<>();
    inputs.forEach((name, type) -> {
      HostInput.Builder b = HostInput.newBuilder().setName(name).setElemType(type.elemType());
      if (type.hasRank()) {
        type.dims().forEach(d -> b.addShape(manifestDim(d)));
      }
      out.add(b.build());
    });
    return out;
  }

  /** An IR dimension as the manifest writes it: its size, its symbol, or {@code "?"} when unknown. */
  public static dev.graft.spec.manifest.Dim manifestDim(Dim d) {
    return d.isKnown()
        ? dev.graft.spec.manifest.Dim.newBuilder().setSize(d.size()).build()
        : dev.graft.spec.manifest.Dim.newBuilder().setSymbol(d.isSymbol() ? d.symbolName() : "?").build();
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
            .setConfig(AdapterConfig.json(List.of(a), spec.task(), spec.host(), false));
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

  /** The host's floating-point element type: that of its first floating-point output (float32 if none). */
  private static int hostElemType(Graph g) {
    for (String o : g.outputs()) {
      TensorType t = g.type(o);
      if (t != null && t.isFloating()) {
        return t.elemType();
      }
    }
    return TensorType.FLOAT;
  }

  private static Task task(TaskSpec t, Validation.Plan plan) {
    Task.Builder b = Task.newBuilder()
        .setLoss(TaskPass.loss(t))
        .setHostOutput(plan.hostOutput())
        .setNumOutputs(t instanceof CausalLmSpec ? plan.hidden() : TaskPass.headOutputs(t));
    if (t instanceof ClassificationSpec c) {
      b.setIgnoreIndex(c.ignoreIndex()).setLabelSmoothing(c.labelSmoothing());
    } else if (t instanceof CausalLmSpec lm) {
      b.setIgnoreIndex(lm.ignoreIndex()).setLabelSmoothing(lm.labelSmoothing()).setLabelsInput(TaskPass.INPUT_IDS);
    }
    return b.build();
  }

  private static AdamW adamW(AdamWSpec o) {
    return AdamW.newBuilder().setBeta1(o.beta1()).setBeta2(o.beta2()).setEpsilon(o.epsilon())
        .setWeightDecay(o.weightDecay()).build();
  }
}
