package dev.graft.compiler.kinds.bottleneck;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SpanSite;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;

/**
 * Parallel adapter (He et al. 2022, "Towards a Unified View of Parameter-Efficient Transfer
 * Learning"): beside a layer's feed-forward block, from its input x to its output h (bias
 * included), {@code h' = h + scaling · up(act(down(x)))}. Down {@code [in, in/reduction]} and up
 * {@code [in/reduction, out]}, each with a bias. Defaults follow AdapterHub's {@code ParBnConfig}:
 * reduction 2, relu, scaling 4, {@code mam_adapter} init (up zero: the adapter starts as the
 * identity).
 */
public final class ParallelAdapterKind implements ComposableKind {
  /** What parallel adapters and Hydra take; one declaration per span. */
  static final String SPAN = "feed-forward span";

  @Override
  public String id() {
    return "parallel";
  }

  @Override
  public String displayName() {
    return "Parallel adapter";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.ParallelAdapter";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        Bottlenecks.reduction(2),
        Bottlenecks.nonlinearity("relu", Bottlenecks.NONLINEARITIES),
        AdapterOption.positive("scaling", 4, "the adapter's output is multiplied by this before it is added"),
        Bottlenecks.initWeights());
  }

  @Override
  public String siteDescription() {
    return SPAN;
  }

  @Override
  public List<SpanSite> candidates(Graph graph) {
    return SpanSite.find(graph);
  }

  /** {@code v + scaling · up(act(down(x)))} with x the span's input, the up projection sized by {@code width}. */
  @Override
  public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    SpanSite span = (SpanSite) site;
    String base = "/" + span.modulePath().replace('.', '/') + "/parallel_adapter";
    String p = Bottlenecks.branch(placement, span, "parallel_adapter", "adapters.default", span.input(), span.in(),
        width, spec, spec.stringOption("nonlinearity"));
    return placement.graph().op(base + "/Add", "Add",
        List.of(value, Bottlenecks.scaled(placement, base, p, spec.doubleOption("scaling"))));
  }
}
