package dev.graft.compiler.plan;

import dev.graft.compiler.HostModel;
import dev.graft.compiler.tasks.TaskKind;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.TaskSpec;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * Validation pass: checks a declaration against the imported host and resolves selectors to
 * sites. Collects every problem rather than stopping at the first.
 */
public final class Validation {
  /**
   * Each adapter declaration (options checked and defaulted) with its sites, in declaration order, and the task's host output
   * with its last dimension (hidden size of a pooled head; vocabulary size for the causal LM), and
   * the module paths of the host's linear layers (in graph order, each once), found on the import.
   */
  public record Plan(List<PlannedAdapter> adapters, String hostOutput, long hidden, CompositionPlan compositions,
      List<String> linearModules) {}

  private final List<Diagnostic> errors = new ArrayList<>();

  public List<Diagnostic> errors() {
    return errors;
  }

  public Plan check(GraftSpec spec, HostModel host, Graph graph) {
    int opset = OnnxImport.opset(host.model());
    if (opset < OnnxImport.MIN_OPSET || opset > OnnxImport.MAX_OPSET) {
      errors.add(Diagnostic.of(ErrorCode.HOST_OPSET_UNSUPPORTED, spec.source(), "host", host.name(), opset, ""));
    } else {
      List<String> newer = OnnxImport.newerThanOpset17(graph);
      if (!newer.isEmpty()) {
        errors.add(Diagnostic.of(ErrorCode.HOST_OPSET_UNSUPPORTED, spec.source(), "host", host.name(), opset,
            ", but these ops have no opset-17 form Graft can rewrite them to: " + newer));
      }
    }
    List<PlannedAdapter> adapters = new ArrayList<>();
    Map<String, PlannedAdapter> owner = new LinkedHashMap<>();
    CompositionCheck compositionCheck = new CompositionCheck(errors);
    compositionCheck.checkNames(spec);
    Map<String, Integer> composedIn = CompositionCheck.membership(spec);
    for (AdapterSpec declared : spec.adapters()) {
      PlannedAdapter planned = checkAdapter(declared, host, graph);
      if (planned == null) {
        continue;
      }
      Map<PlannedAdapter, List<String>> shared = new LinkedHashMap<>();
      for (Site s : planned.sites()) {
        String key = planned.kind().siteDescription() + " " + s.node();
        PlannedAdapter previous = owner.putIfAbsent(key, planned);
        // Named adapters and composition: adapters of one composition block share their sites.
        if (previous != null && !(declared.isNamed() && previous.spec().isNamed()
            && composedIn.containsKey(declared.name())
            && composedIn.get(declared.name()).equals(composedIn.get(previous.spec().name())))) {
          shared.computeIfAbsent(previous, k -> new ArrayList<>()).add(s.node());
        }
      }
      shared.forEach((previous, nodes) -> errors.add(Diagnostic.of(ErrorCode.SITES_OVERLAP,
          declared.source(), "target", previous.kind().displayName(), previous.spec().target(),
          planned.kind().displayName(), declared.target(), nodes)));
      adapters.add(planned);
    }
    TaskSpec task = spec.task();
    TaskKind taskKind = TaskKind.of(task);
    taskKind.check(task, spec, graph, errors);
    String output = task.hostOutput().isEmpty() ? graph.outputs().get(0) : task.hostOutput();
    long size = -1;
    if (!graph.outputs().contains(output)) {
      errors.add(Diagnostic.of(ErrorCode.HEAD_OUTPUT_NOT_FOUND, task.source(), "output", output, graph.outputs()));
    } else {
      TensorType t = graph.type(output);
      Diagnostic misfit = taskKind.checkOutput(task, output, t);
      if (misfit != null) {
        errors.add(misfit);
      } else {
        size = t.dim(2).size();
      }
    }
    checkOptimizer(spec.optimizer(), spec.source());
    CompositionPlan compositions = compositionCheck.check(spec, adapters);
    List<String> linear = LinearSite.find(graph).stream().map(LinearSite::modulePath).distinct().toList();
    return new Plan(adapters, output, size, compositions, linear);
  }

  /**
   * Checks one adapter declaration: its kind, its options (filled with defaults), its selector
   * and layers against the kind's candidate sites ({@link DeclaredOptions}, {@link
   * SiteSelection}), then the kind's own checks. Null when it cannot be placed.
   */
  private @Nullable PlannedAdapter checkAdapter(AdapterSpec declared, HostModel host, Graph graph) {
    AdapterKind kind = AdapterKinds.byId(declared.kind()).orElse(null);
    if (kind == null) {
      errors.add(Diagnostic.of(ErrorCode.ADAPTER_KIND_UNKNOWN, declared.source(), null, declared.kind(),
          AdapterKinds.all().stream().map(AdapterKind::id).toList()));
      return null;
    }
    DeclaredOptions.Checked options = DeclaredOptions.check(kind, declared);
    errors.addAll(options.errors());
    AdapterSpec spec = options.spec();
    SiteSelection.Result selection = SiteSelection.select(kind, spec, graph, host.name());
    Diagnostic noSites = selection.error();
    if (noSites != null) {
      errors.add(noSites);
      return null;
    }
    if (!options.errors().isEmpty()) {
      return null;
    }
    List<Diagnostic> own = kind.diagnose(spec, selection.sites(), graph);
    if (!own.isEmpty()) {
      errors.addAll(own);
      return null;
    }
    return new PlannedAdapter(spec, kind, selection.sites());
  }

  private void checkOptimizer(AdamWSpec o, Object source) {
    range("beta1", o.beta1(), 0, 1, "[0, 1)", source);
    range("beta2", o.beta2(), 0, 1, "[0, 1)", source);
    if (!(o.epsilon() > 0)) {
      errors.add(Diagnostic.of(ErrorCode.OPTIMIZER_INVALID, source, "epsilon", "epsilon", "(0, ∞)", o.epsilon()));
    }
    if (!(o.weightDecay() >= 0)) {
      errors.add(Diagnostic.of(ErrorCode.OPTIMIZER_INVALID, source, "weightDecay", "weightDecay", "[0, ∞)", o.weightDecay()));
    }
  }

  private void range(String name, double v, double lo, double hi, String text, Object source) {
    if (!(v >= lo && v < hi)) {
      errors.add(Diagnostic.of(ErrorCode.OPTIMIZER_INVALID, source, name, name, text, v));
    }
  }
}
