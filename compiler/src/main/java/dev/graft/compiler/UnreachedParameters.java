package dev.graft.compiler;

import dev.graft.compiler.autodiff.GradientRegistry;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Parameter;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * The check after the training step's backward pass: every trainable parameter must have a
 * gradient path to the loss, or it would compile, be saved and "train" while never moving. Each
 * parameter the backward pass did not reach is a {@code GRAFT190} on its declaration, naming the
 * parameter, its site and why: no node reads it, the site's output does not flow into the task's
 * host output, or its only paths to the loss pass through values that carry no gradient.
 */
final class UnreachedParameters {
  private UnreachedParameters() {}

  /**
   * @param forward the training variant's forward nodes, before the backward pass was appended
   * @param graph the training graph (for value types)
   * @param unreached the parameters the backward pass did not reach, in order
   */
  static List<Diagnostic> diagnose(GraftSpec spec, Validation.Plan plan, List<Node> forward, Graph graph, List<Parameter> parameters,
      List<String> unreached, String loss) {
    List<Diagnostic> out = new ArrayList<>();
    for (String name : unreached) {
      Parameter p = parameters.stream().filter(x -> x.getName().equals(name)).findFirst().orElseThrow();
      PlannedAdapter adapter = p.getAdapter() > 0 && p.getAdapter() <= plan.adapters().size()
          ? plan.adapters().get(p.getAdapter() - 1) : null;
      String kind = adapter == null ? "head" : adapter.kind().displayName();
      String site = p.getSiteNode().isEmpty() ? p.getSite() : p.getSiteNode();
      out.add(Diagnostic.of(ErrorCode.PARAMETER_UNREACHABLE, adapter == null ? spec.source() : adapter.spec().source(),
          adapter == null ? null : "target", kind, name, site,
          reason(forward, graph, name, p.getSiteNode(), plan.hostOutput(), loss)));
    }
    return out;
  }

  private static String reason(List<Node> forward, Graph graph, String parameter, String siteNode, String hostOutput,
      String loss) {
    if (forward.stream().noneMatch(n -> n.inputs().contains(parameter))) {
      return "no node of the training graph reads it";
    }
    // Every value computed from the parameter, through any op.
    Set<String> reached = new HashSet<>(Set.of(parameter));
    for (Node n : forward) {
      if (n.inputs().stream().anyMatch(reached::contains)) {
        n.outputs().stream().filter(o -> !o.isEmpty()).forEach(reached::add);
      }
    }
    if (!reached.contains(loss)) {
      return (siteNode.isEmpty() ? "nothing computed from it" : "the output of " + siteNode)
          + " does not flow into the task's host output '" + hostOutput + "' (the task reads that output only)";
    }
    // The loss is computed from it, but not differentiably: name the first node that stops the gradient.
    Node stop = firstGradientStop(forward, graph, reached, loss);
    return stop == null
        ? "the gradient rules on its paths to the loss give it no gradient"
        : "its paths to the loss pass through " + stop.opType() + " node '" + stop.name()
            + "', whose result carries no gradient (an integer, boolean or index value)";
  }

  /** The first node, in graph order, on a path from the parameter to the loss whose outputs carry no gradient. */
  private static @Nullable Node firstGradientStop(List<Node> forward, Graph graph, Set<String> reached, String loss) {
    Set<String> toLoss = new HashSet<>(Set.of(loss));
    for (int i = forward.size() - 1; i >= 0; i--) {
      Node n = forward.get(i);
      if (n.outputs().stream().anyMatch(toLoss::contains)) {
        toLoss.addAll(n.inputs());
      }
    }
    for (Node n : forward) {
      boolean onPath = n.inputs().stream().anyMatch(reached::contains)
          && n.outputs().stream().anyMatch(toLoss::contains);
      if (onPath && (GradientRegistry.isNonDifferentiable(n.opType())
          || n.outputs().stream().noneMatch(o -> floating(graph.type(o))))) {
        return n;
      }
    }
    return null;
  }

  private static boolean floating(@Nullable TensorType t) {
    return t == null || t.elemType() == 0 || t.isFloating();
  }
}
