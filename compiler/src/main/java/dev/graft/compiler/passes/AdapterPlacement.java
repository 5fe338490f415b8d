package dev.graft.compiler.passes;

import dev.graft.compiler.plan.CompositionPlan;
import dev.graft.compiler.plan.PlannedAdapter;

import dev.graft.compiler.kinds.Placement;
import java.util.List;

/**
 * Placement pass: every adapter declaration's kind adds its parameters and nodes at its sites,
 * in declaration order. Needs: a typed graph and a validated plan. Guarantees: graph re-sorted;
 * parameters returned in placement order, each tagged with its declaration.
 */
public final class AdapterPlacement {
  private AdapterPlacement() {}

  public static Placement place(dev.graft.compiler.ir.Graph graph, List<PlannedAdapter> plan, boolean training, int elemType) {
    return place(graph, plan, CompositionPlan.EMPTY, training, elemType);
  }

  /**
   * Places every declaration; the named adapters of composable forms last, by {@link
   * CompositionPlacement}, gated and combined as {@code compositions} says.
   */
  public static Placement place(dev.graft.compiler.ir.Graph graph, List<PlannedAdapter> plan, CompositionPlan compositions,
      boolean training, int elemType) {
    Placement placement = new Placement(graph, training, elemType);
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
