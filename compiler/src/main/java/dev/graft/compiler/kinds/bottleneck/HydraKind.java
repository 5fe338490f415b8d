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
 * Hydra (Kim et al. 2024, "Hydra: Multi-head Low-rank Adaptation for Parameter Efficient
 * Fine-tuning"): a parallel and a sequential branch on one feed-forward span from x to h,
 * {@code h' = h + scaling · (P(x) + S(h))} with {@code P(x) = up_p(act(down_p(x)))} and {@code
 * S(h) = up_s(act(down_s(h)))}. As in the authors' code, the sequential branch reads the host's
 * output h (not {@code h + P(x)}), and the branches are linear by default (nonlinearity {@code
 * identity}), so a trained Hydra can be merged into the host. Each branch: down {@code [in,
 * in/reduction]} kaiming-uniform and up zero (the authors' init), biases zero.
 */
public final class HydraKind implements ComposableKind {
  @Override
  public String id() {
    return "hydra";
  }

  @Override
  public String displayName() {
    return "Hydra";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Hydra";
  }

  @Override
  public List<AdapterOption> options() {
    List<String> nonlinearities = new java.util.ArrayList<>(List.of("identity"));
    nonlinearities.addAll(Bottlenecks.NONLINEARITIES);
    return List.of(
        Bottlenecks.reduction(16),
        Bottlenecks.nonlinearity("identity", nonlinearities),
        AdapterOption.positive("scaling", 1, "the branches' sum is multiplied by this before it is added"),
        Bottlenecks.initWeights());
  }

  @Override
  public String siteDescription() {
    return ParallelAdapterKind.SPAN;
  }

  @Override
  public List<SpanSite> candidates(Graph graph) {
    return SpanSite.find(graph);
  }

  /**
   * {@code v + scaling · (P(x) + S(v))} with x the span's input; P's up projection and S are sized by
   * {@code width}.
   */
  @Override
  public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    SpanSite span = (SpanSite) site;
    Graph g = placement.graph();
    String act = spec.stringOption("nonlinearity");
    String base = "/" + span.modulePath().replace('.', '/') + "/hydra";
    String p = Bottlenecks.branch(placement, span, "hydra.parallel", "hydra.default.parallel", span.input(),
        span.in(), width, spec, act);
    String q = Bottlenecks.branch(placement, span, "hydra.sequential", "hydra.default.sequential", value,
        width, width, spec, act);
    String sum = g.op(base + "/Add", "Add", List.of(p, q));
    return g.op(base + "/Add_1", "Add", List.of(value, Bottlenecks.scaled(placement, base, sum, spec.doubleOption("scaling"))));
  }
}
