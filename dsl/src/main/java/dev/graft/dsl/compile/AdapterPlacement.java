package dev.graft.dsl.compile;

import dev.graft.dsl.adapter.Placement;
import java.util.List;

/**
 * Placement pass: every adapter declaration's kind adds its parameters and nodes at its sites,
 * in declaration order. Needs: a typed graph and a validated plan. Guarantees: graph re-sorted;
 * parameters returned in placement order, each tagged with its declaration.
 */
final class AdapterPlacement {
  private AdapterPlacement() {}

  static Placement place(dev.graft.dsl.ir.Graph graph, List<PlannedAdapter> plan, boolean training, int elemType) {
    Placement placement = new Placement(graph, training, elemType);
    for (int i = 0; i < plan.size(); i++) {
      PlannedAdapter a = plan.get(i);
      placement.declaration(i);
      a.kind().place(a.spec(), a.sites(), placement);
    }
    graph.sortTopologically();
    return placement;
  }
}
