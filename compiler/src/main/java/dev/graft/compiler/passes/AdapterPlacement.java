package dev.graft.compiler.passes;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.plan.CompositionPlan;
import dev.graft.compiler.plan.PlannedAdapter;
import java.util.List;

/**
 * Placement pass: every adapter declaration's kind adds its parameters and nodes at its sites,
 * in declaration order, then {@link CompositionPlacement} places the named composable adapters.
 * Needs: a typed graph of one variant and a validated plan. Guarantees: graph re-sorted;
 * parameters returned in placement order, each tagged with its declaration; training-only nodes
 * only where the variant {@link GraphVariant#trains() trains}.
 */
public final class AdapterPlacement {
  private AdapterPlacement() {}

  /** Places declarations that take part in no composition. */
  public static Placement place(Graph graph, List<PlannedAdapter> plan, GraphVariant variant, int elemType) {
    return place(graph, plan, CompositionPlan.EMPTY, variant, elemType);
  }

  /**
   * Places every declaration; the named adapters of composable forms last, by {@link
   * CompositionPlacement}, gated and combined as {@code compositions} says.
   */
  public static Placement place(Graph graph, List<PlannedAdapter> plan, CompositionPlan compositions,
      GraphVariant variant, int elemType) {
    Placement placement = new Placement(graph, variant, elemType);
    for (int i = 0; i < plan.size(); i++) {
      PlannedAdapter a = plan.get(i);
      if (CompositionPlacement.placesHere(a)) {
        continue;
      }
      placement.declaration(i, a.spec().name(), compositions.frozen().contains(a.spec().name()));
      a.kind().place(a.spec(), a.sites(), placement);
    }
    CompositionPlacement.place(graph, plan, compositions, placement);
    graph.sortTopologically();
    return placement;
  }
}
