package dev.graft.compiler;

import dev.graft.compiler.autodiff.Autodiff;
import dev.graft.compiler.autodiff.GradientRegistry;
import dev.graft.compiler.autodiff.DataDependentIndexException;
import dev.graft.compiler.autodiff.MissingGradientException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.emit.GraftEmitter;
import dev.graft.compiler.emit.KeyValueCaches;
import dev.graft.compiler.emit.ParameterAgreement;
import dev.graft.compiler.emit.VariantGraph;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.passes.AdamWUpdate;
import dev.graft.compiler.passes.AdapterPlacement;
import dev.graft.compiler.passes.GatheredAdapters;
import dev.graft.compiler.passes.ImportFusion;
import dev.graft.compiler.passes.SavedActivations;
import dev.graft.compiler.passes.SiteUpdates;
import dev.graft.compiler.passes.TrainingFusion;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.compiler.tasks.TaskPass;
import dev.graft.spec.manifest.GatheredTensor;
import dev.graft.spec.manifest.KeyValueCache;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.SavedActivation;
import dev.graft.spec.manifest.SiteUpdate;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * Compiles a declaration against its host, as a pipeline of passes over one IR:
 *
 * <ol>
 *   <li>import ({@link #imported}: ONNX → IR, shape inference);
 *   <li>plan ({@link Validation}: checks, options, site selection, compositions) — once;
 *   <li>per {@link GraphVariant}, on its own copy of the host: place adapters ({@link
 *       AdapterPlacement}) → add the task's head and loss ({@link TaskPass}) → infer shapes → for
 *       the training step: autodiff ({@link Autodiff}) → the check that it reached every trained
 *       parameter ({@link UnreachedParameters}) → the forward's fused LayerNorms ({@link
 *       TrainingFusion}) → saved activations ({@link SavedActivations}) →
 *       optimizer ({@link AdamWUpdate}); for the update graph: the linear sites'
 *       weight updates ({@link SiteUpdates}); for the merged graph: placement of the adapters
 *       without a merged form, the others' sites reading merged tensors ({@link
 *       AdapterPlacement#placeMerged}, {@link SiteUpdates#merged});
 *   <li>check that every variant declares the same parameters ({@link ParameterAgreement});
 *   <li>when asked for, the gathered multi-adapter graph on another copy of the host ({@link
 *       GatheredAdapters}, the task's gathered head);
 *   <li>emit the ONNX models and the manifest ({@link GraftEmitter}).
 * </ol>
 *
 * Never throws for a bad declaration: every problem found comes back as a diagnostic.
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
    return compile(spec, host, exposeGradients, Set.of());
  }

  /**
   * Also compiles the variants of {@code also} that are compiled only when asked for ({@link
   * GraphVariant#GATHERED}).
   */
  public static CompileResult compile(GraftSpec spec, HostModel host, Set<GraphVariant> also) {
    return compile(spec, host, false, also);
  }

  public static CompileResult compile(GraftSpec spec, HostModel host, boolean exposeGradients, Set<GraphVariant> also) {
    List<Diagnostic> hostErrors = HostChecks.check(host, spec.source());
    if (!hostErrors.isEmpty()) {
      return CompileResult.failed(hostErrors);
    }
    Graph base;
    try {
      base = imported(host);
    } catch (RuntimeException e) {
      return CompileResult.failed(List.of(invalidHost(host, spec.source(), e)));
    }
    try {
      return compileImported(spec, host, base, exposeGradients, also.contains(GraphVariant.GATHERED),
          also.contains(GraphVariant.GRADIENT) || also.contains(GraphVariant.APPLY));
    } catch (GraftCompileException e) {
      return CompileResult.failed(e.diagnostics());
    } catch (RuntimeException e) {
      // A pass met a graph it cannot take (e.g. a hostile host that imports but breaks a rule's
      // assumption): a coded internal error naming where, never a raw exception to the caller.
      return CompileResult.failed(List.of(internalError(spec, e)));
    }
  }

  /**
   * @param base the imported host, left as it is: each variant runs on its own {@link Graph#copy}
   */
  private static CompileResult compileImported(GraftSpec spec, HostModel host, Graph base, boolean exposeGradients,
      boolean gathered, boolean dataParallel) {
    Graph imported = base.copy();
    Graph importedForTraining = base.copy();
    Graph importedForUpdate = base.copy();
    Graph importedForMerge = base.copy();
    Graph scratch = base.copy();
    Validation validation = new Validation();
    Validation.Plan plan = validation.check(spec, host, imported);
    if (!validation.errors().isEmpty()) {
      return CompileResult.failed(validation.errors());
    }
    Map<String, TensorType> hostInputs = new LinkedHashMap<>(imported.inputs());
    int elemType = hostElemType(imported);

    VariantGraph inference = forward(GraphVariant.INFERENCE, imported, spec, plan, elemType);
    VariantGraph train;
    List<VariantGraph> halves = new ArrayList<>();
    try {
      train = trainStep(forward(GraphVariant.TRAIN, importedForTraining, spec, plan, elemType), spec, plan,
          exposeGradients, dataParallel ? halves : null);
    } catch (MissingGradientException e) {
      return CompileResult.failed(List.of(e.ruleMissing()
          ? Diagnostic.of(ErrorCode.NO_GRADIENT_RULE, spec.source(), null, e.node().opType(), e.node().domain(),
              Graph.OPSET, e.node().name(), GradientRegistry.differentiableOps() + " (" + e.getMessage() + ")")
          : Diagnostic.of(ErrorCode.GRADIENT_RULE_CANNOT_APPLY, spec.source(), null, e.node().opType(),
              e.node().name(), e.detail())));
    } catch (DataDependentIndexException e) {
      return CompileResult.failed(List.of(Diagnostic.of(ErrorCode.DATA_DEPENDENT_INDEX, spec.source(), null,
          e.node().opType(), e.node().name(), e.index(), e.getMessage())));
    }

    Map<String, String> hostBiases = SiteUpdates.hostBiases(importedForUpdate, plan.adapters());
    VariantGraph update = forward(GraphVariant.UPDATE, importedForUpdate, spec, plan, elemType);
    List<SiteUpdate> siteUpdates = SiteUpdates.add(update.graph(), plan.adapters(), update.parameters(), hostBiases);
    ShapeInference.run(update.graph());
    VariantGraph merge = merged(importedForMerge, scratch, spec, plan, elemType);
    siteUpdates = SiteUpdates.merged(merge.graph(), siteUpdates);
    merge.graph().removeUnused();
    ShapeInference.run(merge.graph());

    List<VariantGraph> variants = new ArrayList<>(List.of(inference, train, update, merge));
    variants.addAll(halves);
    Diagnostic disagreement = ParameterAgreement.check(spec, variants);
    if (disagreement != null) {
      return CompileResult.failed(List.of(disagreement));
    }
    if (!gathered) {
      return new CompileResult(
          GraftEmitter.emit(spec, host, plan, hostInputs, inference, train, update, merge, siteUpdates, null,
              List.of(), halves), List.of());
    }
    Graph gatheredGraph = base.copy();
    List<GatheredTensor> stacked = new ArrayList<>(GatheredAdapters.place(gatheredGraph, spec, plan, siteUpdates, elemType));
    TaskPass.addGathered(gatheredGraph, spec.task(), plan.hostOutput(), plan.hidden(), stacked);
    ShapeInference.run(gatheredGraph);
    gatheredGraph.removeUnused();
    return new CompileResult(GraftEmitter.emit(spec, host, plan, hostInputs, inference, train, update, merge,
        siteUpdates, gatheredGraph, stacked, halves), List.of());
  }

  private static Diagnostic internalError(GraftSpec spec, RuntimeException e) {
    StackTraceElement at = e.getStackTrace().length == 0 ? null : e.getStackTrace()[0];
    String what = e.getClass().getSimpleName() + (e.getMessage() == null ? "" : " " + e.getMessage())
        + (at == null ? "" : " at " + at.getClassName().substring(at.getClassName().lastIndexOf('.') + 1)
            + "." + at.getMethodName() + ":" + at.getLineNumber());
    return Diagnostic.of(ErrorCode.INTERNAL_ERROR, spec.source(), null, spec.name(), what);
  }

  /**
   * A host the import or shape inference could not take (a cycle, an index out of range, a rank
   * that had to be known) as {@code GRAFT006}; {@link HostChecks} has bounded its sizes before.
   */
  private static Diagnostic invalidHost(HostModel host, Object source, RuntimeException e) {
    String what = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
    return Diagnostic.of(ErrorCode.HOST_GRAPH_INVALID, source, "host", "'" + host.name() + "'", what);
  }

  /**
   * Import pass, shape inference and import fusion (decomposed LayerNorms and GELUs as one op
   * each): the IR every compilation starts from (and the host inspector reads).
   */
  public static Graph imported(HostModel host) {
    Graph g = OnnxImport.read(host.model());
    // ONNX requires sorted nodes; a hostile host's cycle is found here, before shape inference.
    g.sortTopologically();
    ShapeInference.run(g);
    if (ImportFusion.run(g)[1] > 0) {
      ShapeInference.run(g);
    }
    return g;
  }

  /**
   * The forward part of one variant on {@code graph} (a fresh copy of the imported host): adapters placed,
   * the task added, shapes inferred. The inference graph is final here (unused values removed).
   */
  private static VariantGraph forward(GraphVariant variant, Graph graph, GraftSpec spec, Validation.Plan plan,
      int elemType) {
    // An adapter on the node that computes the host output (an LM head) renames it: the task reads
    // the graph output at the same position, i.e. the value with the adapter applied.
    int hostOutputAt = graph.outputs().indexOf(plan.hostOutput());
    Set<String> hostInputs = new HashSet<>(graph.inputs().keySet());
    Placement placed = AdapterPlacement.place(graph, plan.adapters(), plan.compositions(), variant, elemType);
    String hostOutput = hostOutputAt < 0 ? plan.hostOutput() : graph.outputs().get(hostOutputAt);
    if (!hostOutput.equals(plan.hostOutput())) {
      ShapeInference.run(graph);
    }
    List<String> presents = KeyValueCaches.of(graph.inputs(), graph.outputs()).stream()
        .map(KeyValueCache::getPresentOutput).toList();
    List<Parameter> params = new ArrayList<>(placed.parameters());
    params.addAll(TaskPass.add(graph, variant, spec.task(), hostOutput, plan.hidden(), placed.auxiliaryLosses()));
    if (variant == GraphVariant.INFERENCE) {
      presents.stream().filter(o -> !graph.outputs().contains(o)).forEach(graph.outputs()::add);
    }
    // A parameter that takes a host initializer's place (host-tensor kinds) removed it; any other
    // host value of its name (an initializer, an input, a node output) would be a second definition.
    Set<String> produced = new HashSet<>();
    graph.nodes().forEach(n -> produced.addAll(n.outputs()));
    List<Diagnostic> clashes = new ArrayList<>();
    for (Parameter p : params) {
      String what = graph.initializers().containsKey(p.getName()) ? "an initializer"
          : hostInputs.contains(p.getName()) ? "an input" : produced.contains(p.getName()) ? "a value" : null;
      if (what != null) {
        clashes.add(Diagnostic.of(ErrorCode.PARAMETER_NAME_CLASH, spec.source(), null, p.getName(), p.getSite(), what));
      }
    }
    if (!clashes.isEmpty()) {
      throw new GraftCompileException(clashes);
    }
    ShapeInference.run(graph);
    if (!variant.trains()) {
      graph.removeUnused();
    }
    return new VariantGraph(variant, graph, params, placed, List.of());
  }

  /**
   * The merged variant's forward part on {@code graph}: the mergeable declarations only declared
   * (placed into {@code scratch}), the task added, its outputs the task's then the host's own.
   */
  private static VariantGraph merged(Graph graph, Graph scratch, GraftSpec spec, Validation.Plan plan, int elemType) {
    Placement placed = AdapterPlacement.placeMerged(graph, scratch, plan.adapters(), plan.compositions(), elemType);
    List<String> hostOutputs = new ArrayList<>(graph.outputs());
    List<Parameter> params = new ArrayList<>(placed.parameters());
    params.addAll(TaskPass.add(graph, GraphVariant.MERGE, spec.task(), plan.hostOutput(), plan.hidden(),
        placed.auxiliaryLosses()));
    hostOutputs.stream().filter(o -> !graph.outputs().contains(o)).forEach(graph.outputs()::add);
    ShapeInference.run(graph);
    return new VariantGraph(GraphVariant.MERGE, graph, params, placed, List.of());
  }

  /**
   * The training step on a forward training variant: the loss's gradient with respect to every
   * trained parameter, the saved activations, the AdamW update.
   *
   * @param halves where given, receives the data-parallel halves of the step: the {@link
   *     GraphVariant#GRADIENT} graph (a copy of this graph after the backward pass, its outputs the
   *     loss and the gradients) and the {@link GraphVariant#APPLY} graph (the same AdamW update on
   *     gradient inputs)
   */
  private static VariantGraph trainStep(VariantGraph forward, GraftSpec spec, Validation.Plan plan,
      boolean exposeGradients, @Nullable List<VariantGraph> halves) {
    Graph train = forward.graph();
    List<String> trained = forward.parameters().stream().filter(p -> !p.getFrozen()).map(Parameter::getName).toList();
    Set<String> forwardNodes = new HashSet<>();
    train.nodes().forEach(n -> forwardNodes.add(n.name()));
    List<Node> forwardGraph = List.copyOf(train.nodes());
    Autodiff.Gradients gradients = Autodiff.backward(train, TaskPass.LOSS, trained, spec.int8Backward());
    if (spec.int8Backward() != Int8Backward.DEQUANTIZED && gradients.integerProducts().isEmpty()) {
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.INT8_BACKWARD_UNUSED, spec.source(), null,
          spec.int8Backward())));
    }
    List<Diagnostic> unreached = UnreachedParameters.diagnose(spec, plan, forwardGraph, train, forward.parameters(),
        gradients.unreached(), TaskPass.LOSS);
    if (!unreached.isEmpty()) {
      throw new GraftCompileException(unreached);
    }
    TrainingFusion.apply(train);
    Map<String, String> grads = gradients.values();
    if (halves != null) {
      List<String> masked = forward.parameters().stream().filter(p -> !p.getUpdateMask().isEmpty())
          .map(Parameter::getName).toList();
      if (!masked.isEmpty()) {
        throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.DATA_PARALLEL_UPDATE_MASK, spec.source(), null,
            masked.size(), masked.get(0))));
      }
      Graph gradient = train.copy();
      gradient.outputs().clear();
      gradient.outputs().add(TaskPass.LOSS);
      for (String p : trained) {
        gradient.outputs().add(gradient.opTo(p + GRADIENT_SUFFIX, "/grad/" + p + "/out", "Identity",
            List.of(grads.get(p))));
      }
      gradient.removeUnused();
      ShapeInference.run(gradient);
      halves.add(new VariantGraph(GraphVariant.GRADIENT, gradient, forward.parameters(), forward.placement(),
          List.of()));
      Graph apply = new Graph();
      Map<String, TensorType> types = new LinkedHashMap<>();
      forward.parameters().forEach(p -> types.put(p.getName(), train.typeOrThrow(p.getName())));
      AdamWUpdate.addApply(apply, spec.optimizer(), forward.parameters(), types, GRADIENT_SUFFIX);
      halves.add(new VariantGraph(GraphVariant.APPLY, apply, forward.parameters(), forward.placement(), List.of()));
    }
    if (exposeGradients) {
      for (String p : trained) {
        train.outputs().add(train.opTo(p + GRADIENT_SUFFIX, "/grad/" + p + "/out", "Identity", List.of(grads.get(p))));
      }
    }
    List<SavedActivation> saved = SavedActivations.find(train, forwardNodes);
    AdamWUpdate.add(train, spec.optimizer(), forward.parameters(), grads);
    train.removeUnused();
    ShapeInference.run(train);
    return new VariantGraph(forward.variant(), train, forward.parameters(), forward.placement(), saved);
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
}
