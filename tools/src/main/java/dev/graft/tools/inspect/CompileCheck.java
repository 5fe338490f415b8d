package dev.graft.tools.inspect;

import dev.graft.compiler.CompileResult;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import org.jspecify.annotations.Nullable;

/**
 * The real compile of a declaration the inspector lists, so that it marks the sites the compiler
 * would refuse (an op without a gradient rule after the site, a site whose output does not reach
 * the task's output, …) with the compiler's own error. The task is one the host can take: a
 * 2-label classification head on its first {@code [batch, sequence, hidden]} output, else the
 * causal LM loss on its first {@code [batch, sequence, vocab]} output.
 */
final class CompileCheck {
  /**
   * @param task what the check compiled with, e.g. {@code a 2-label head on 'last_hidden_state'}
   * @param refused each refused site's node and the compiler's first error for it, in site order
   * @param whole the errors of the whole declaration when no single site explains them
   */
  record Outcome(String task, Map<String, Diagnostic> refused, List<Diagnostic> whole) {
    boolean ok() {
      return refused.isEmpty() && whole.isEmpty();
    }
  }

  private CompileCheck() {}

  /** Compiles {@code spec} on its sites; where that fails, each site alone. Null when the host offers no task to check with. */
  static @Nullable Outcome run(AdapterSpec spec, List<? extends Site> sites, HostModel host, Graph graph) {
    TaskSpec task = null;
    String description = null;
    for (String output : graph.outputs()) {
      TensorType t = graph.type(output);
      if (t == null || !t.isFloating() || !t.hasRank() || t.rank() != 3 || !t.dim(2).isKnown()) {
        continue;
      }
      if (graph.inputs().containsKey("input_ids") && output.toLowerCase(java.util.Locale.ROOT).contains("logits")) {
        task = new CausalLmSpec(output, -100, 0.0, null);
        description = "the causal LM loss on '" + output + "'";
      } else {
        task = new ClassificationSpec(2, graph.inputs().containsKey("attention_mask")
            ? ClassificationSpec.Pooling.MEAN : ClassificationSpec.Pooling.FIRST_TOKEN, output, null);
        description = "a 2-label head on '" + output + "'";
      }
      break;
    }
    if (task == null) {
      return null;
    }
    CompileResult all = compile(spec, spec.target(), task, host);
    if (all.ok()) {
      return new Outcome(description, Map.of(), List.of());
    }
    Map<String, Diagnostic> refused = new LinkedHashMap<>();
    for (Site s : sites) {
      CompileResult one = compile(spec, Pattern.quote(s.node()), task, host);
      if (!one.ok()) {
        refused.put(s.node(), one.diagnostics().get(0));
      }
    }
    return new Outcome(description, refused, refused.isEmpty() ? all.diagnostics() : List.of());
  }

  private static CompileResult compile(AdapterSpec spec, String target, TaskSpec task, HostModel host) {
    AdapterSpec adapter = new AdapterSpec(spec.kind(), target, spec.layers(), spec.options(), null);
    return GraftCompiler.compile(new GraftSpec("Inspect", host.name(), List.of(adapter), task, AdamWSpec.DEFAULT, null),
        host);
  }
}
