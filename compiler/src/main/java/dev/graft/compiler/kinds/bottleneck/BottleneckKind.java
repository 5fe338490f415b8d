package dev.graft.compiler.kinds.bottleneck;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.OutputSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;

/**
 * Sequential bottleneck adapter (Houlsby et al. 2019; Pfeiffer et al. 2020): on the output h of
 * a linear layer, bias included, {@code h' = h + up(act(down(h)))} ({@code up(act(down(h)))}
 * without the residual). Down {@code [out, out/reduction]} and up {@code [out/reduction, out]},
 * each with a bias; with the default {@code mam_adapter} init the up projection is zero, so the
 * adapter starts as the identity.
 *
 * <p>With an empty target, {@code config} picks the sites: {@code pfeiffer} after every layer's
 * feed-forward output ({@code /encoder/layer.N/output/dense/MatMul}), {@code houlsby} after the
 * attention output as well ({@code /encoder/layer.N/attention/output/dense/MatMul}).
 */
public final class BottleneckKind implements ComposableKind {
  /** The feed-forward output dense of a BERT-style layer. */
  static final String PFEIFFER = ".*/layer\\.\\d+/output/dense/MatMul";
  /** The attention output and feed-forward output dense of a BERT-style layer. */
  static final String HOULSBY = ".*/layer\\.\\d+/(attention/output|output)/dense/MatMul";

  @Override
  public String id() {
    return "bottleneck";
  }

  @Override
  public String displayName() {
    return "Bottleneck adapter";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Bottleneck";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.choice("config", "pfeiffer", List.of("pfeiffer", "houlsby"),
            "default sites: pfeiffer after each feed-forward output, houlsby after the attention output too"),
        Bottlenecks.reduction(16),
        Bottlenecks.nonlinearity("relu", Bottlenecks.NONLINEARITIES),
        AdapterOption.bool("residual", true, "add the adapter's output to its input (h + up(act(down(h))))"),
        Bottlenecks.initWeights());
  }

  @Override
  public String siteDescription() {
    return "linear output";
  }

  @Override
  public List<OutputSite> candidates(Graph graph) {
    return OutputSite.find(graph);
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return spec.stringOption("config").equals("houlsby") ? HOULSBY : PFEIFFER;
  }

  /** {@code v + up(act(down(v)))} ({@code up(act(down(v)))} without the residual), sized by {@code width}. */
  @Override
  public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    String update = Bottlenecks.branch(placement, site, "adapter", "adapters.default", value, width, width,
        spec, spec.stringOption("nonlinearity"));
    return spec.boolOption("residual")
        ? placement.graph().op("/" + site.modulePath().replace('.', '/') + "/adapter/Add", "Add", List.of(value, update))
        : update;
  }
}
