package dev.graft.dsl.adapter;

import dev.graft.dsl.ir.Graph;
import dev.graft.dsl.spec.AdapterSpec;
import java.util.List;

/**
 * LayerNorm tuning: trains the host's LayerNorm weights and biases ({@link
 * HostTensorSite#layerNorms}), selected by name ({@code .*attention.*}). Each becomes a
 * parameter initialized from the host, not decayed, saved as {@code base_model.model.<name>}.
 */
public final class LayerNormTuningKind implements AdapterKind {
  @Override
  public String id() {
    return "layernorm";
  }

  @Override
  public String displayName() {
    return "LayerNorm tuning";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.LayerNormTuning";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of();
  }

  @Override
  public String siteDescription() {
    return "layer norm tensor";
  }

  @Override
  public List<HostTensorSite> candidates(Graph graph) {
    List<HostTensorSite> sites = HostTensorSite.layerNorms(graph);
    if (sites.isEmpty()) {
      throw new SiteException("the host has no LayerNorm: looked for LayerNormalization nodes and for"
          + " (x - mean) / sqrt(var + eps) * weight + bias with initializer weight and bias");
    }
    return sites;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    for (Site s : sites) {
      HostTensorSite site = (HostTensorSite) s;
      HostParameters.train(placement, site, site.initializer(), site.suffix(), true,
          Placement.PEFT_PREFIX + site.node(), false);
    }
  }
}
