package dev.graft.compiler.passes;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.plan.CompositionPlan;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Parameter;
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
      placeQuantized(a, placement);
    }
    CompositionPlacement.place(graph, plan, compositions, placement);
    graph.sortTopologically();
    return placement;
  }

  /**
   * Places the merged graph ({@link GraphVariant#MERGE}): the declarations {@link
   * SiteUpdates#mergeable} are placed into {@code scratch} (a fresh copy of the host) so that
   * {@code graph} declares their parameters, in the same order, without their nodes; the others
   * are placed into {@code graph} as {@link #place} does.
   */
  public static Placement placeMerged(Graph graph, Graph scratch, List<PlannedAdapter> plan,
      CompositionPlan compositions, int elemType) {
    Placement placement = new Placement(graph, GraphVariant.MERGE, elemType);
    Placement declared = new Placement(scratch, GraphVariant.MERGE, elemType);
    for (int i = 0; i < plan.size(); i++) {
      PlannedAdapter a = plan.get(i);
      if (CompositionPlacement.placesHere(a)) {
        continue;
      }
      boolean frozen = compositions.frozen().contains(a.spec().name());
      if (SiteUpdates.mergeable(a)) {
        // The scratch placement sees every parameter so far (shared ones, e.g. VeRA's pair, are found).
        for (Parameter p : placement.parameters()) {
          if (!scratch.inputs().containsKey(p.getName())) {
            scratch.addInput(p.getName(), graph.inputs().get(p.getName()));
          }
        }
        declared.parameters().clear();
        declared.parameters().addAll(placement.parameters());
        int before = declared.parameters().size();
        declared.declaration(i, a.spec().name(), frozen);
        a.kind().place(a.spec(), a.sites(), declared);
        placement.declare(List.copyOf(declared.parameters().subList(before, declared.parameters().size())),
            declared.hostSources());
      } else {
        placement.declaration(i, a.spec().name(), frozen);
        placeQuantized(a, placement);
      }
    }
    CompositionPlacement.place(graph, plan, compositions, placement);
    graph.sortTopologically();
    return placement;
  }

  /**
   * Places declaration {@code a} (its {@link Placement#declaration} set), quantized at its {@code
   * quantizeBits} when given.
   *
   * @throws GraftCompileException GRAFT302 when a quantized declaration has no tensor to quantize
   */
  static void placeQuantized(PlannedAdapter a, Placement placement) {
    int bits = a.spec().quantizeBits();
    placement.quantize(bits);
    int before = placement.parameters().size();
    a.kind().place(a.spec(), a.sites(), placement);
    if (bits > 0 && placement.quantizedParameters() == 0) {
      List<String> trained = placement.parameters().subList(before, placement.parameters().size()).stream()
          .map(p -> p.getName() + " " + p.getShapeList() + (p.getFrozen() ? " (frozen)" : "")).toList();
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.QUANTIZE_NOTHING, a.spec().source(),
          AdapterSpec.QUANTIZE_BITS, a.kind().displayName(), bits, trained.isEmpty() ? "no tensor" : trained)));
    }
  }
}
