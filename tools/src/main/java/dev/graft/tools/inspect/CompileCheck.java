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
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * The real compile of a declaration the inspector lists, so that it marks the sites the compiler
 * would refuse (an op without a gradient rule after the site, a site whose output does not reach
 * the task's output, …) with the compiler's own error: with {@code --kind} for that declaration,
 * in the plain listing for each group of kinds with the same sites (its first kind, on all of them). The task is one the host can take: a
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

  /**
   * Compiles {@code spec} on its sites, once; where that fails, finds the sites at fault: those
   * the errors name (then the rest compiled again, to be sure it compiles without them), else by
   * halving the sites. Null when the host offers no task to check with.
   */
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
    Map<Site, Diagnostic> refused = new LinkedHashMap<>();
    List<Diagnostic> whole = refused(spec, sites, task, host, refused);
    Map<String, Diagnostic> bySite = new LinkedHashMap<>();
    for (Site s : sites) {
      if (refused.containsKey(s)) {
        bySite.put(s.node(), refused.get(s));
      }
    }
    return new Outcome(description, bySite, bySite.isEmpty() ? whole : List.of());
  }

  /**
   * Adds the sites of {@code sites} the compiler refuses to {@code refused}, each with its first
   * error naming it; returns the errors of the declaration on {@code sites} that no site explains.
   */
  private static List<Diagnostic> refused(AdapterSpec spec, List<? extends Site> sites, TaskSpec task, HostModel host,
      Map<Site, Diagnostic> refused) {
    CompileResult all = compile(spec, sites, task, host);
    if (all.ok()) {
      return List.of();
    }
    List<Site> named = new ArrayList<>();
    for (Site s : sites) {
      all.diagnostics().stream().filter(d -> names(d.message(), s.node())).findFirst().ifPresent(d -> {
        refused.put(s, d);
        named.add(s);
      });
    }
    if (!named.isEmpty()) {
      List<Site> rest = sites.stream().filter(s -> !named.contains(s)).collect(Collectors.toList());
      return rest.isEmpty() ? List.of() : refused(spec, rest, task, host, refused);
    }
    if (sites.size() == 1) {
      refused.put(sites.get(0), all.diagnostics().get(0));
      return List.of();
    }
    int before = refused.size();
    int half = sites.size() / 2;
    refused(spec, sites.subList(0, half), task, host, refused);
    refused(spec, sites.subList(half, sites.size()), task, host, refused);
    return refused.size() > before ? List.of() : all.diagnostics();
  }

  /** Whether {@code message} names node {@code node} (not as part of a longer name). */
  static boolean names(String message, String node) {
    for (int at = message.indexOf(node); at >= 0; at = message.indexOf(node, at + 1)) {
      int end = at + node.length();
      boolean startsName = at == 0 || !nameChar(message.charAt(at - 1)) && message.charAt(at - 1) != '/';
      boolean endsName = end == message.length() || !nameChar(message.charAt(end));
      if (startsName && endsName) {
        return true;
      }
    }
    return false;
  }

  private static boolean nameChar(char c) {
    return Character.isLetterOrDigit(c) || c == '_' || c == '.';
  }

  /** {@code spec} on exactly {@code sites}. */
  private static CompileResult compile(AdapterSpec spec, List<? extends Site> sites, TaskSpec task, HostModel host) {
    String target = sites.stream().map(s -> Pattern.quote(s.node())).collect(Collectors.joining("|"));
    AdapterSpec adapter = new AdapterSpec(spec.kind(), target, spec.layers(), spec.options(), null);
    return GraftCompiler.compile(new GraftSpec("Inspect", host.name(), List.of(adapter), task, AdamWSpec.DEFAULT, null),
        host);
  }
}
