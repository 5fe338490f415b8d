package dev.graft.dsl.adapter;

import dev.graft.dsl.ir.Graph;
import dev.graft.dsl.spec.AdapterSpec;
import java.util.List;

/**
 * BitFit (Ben Zaken et al. 2022): trains the host's biases and nothing else of it. Sites are
 * the biases {@link HostTensorSite#biases} finds, selected by name ({@code .*attention.*}); each
 * becomes a parameter initialized from the host, not decayed, saved as {@code
 * base_model.model.<name>} (PEFT's layout for biases).
 */
public final class BitFitKind implements AdapterKind {

  @Override
  public String id() {
    return "bitfit";
  }

  @Override
  public String displayName() {
    return "BitFit";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.BitFit";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of();
  }

  @Override
  public String siteDescription() {
    return "bias";
  }

  @Override
  public List<HostTensorSite> candidates(Graph graph) {
    List<HostTensorSite> sites = HostTensorSite.biases(graph);
    if (sites.isEmpty()) {
      throw new SiteException("the host has no bias: no 1-D initializer added after a linear layer and no"
          + " initializer named *.bias");
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
