package dev.graft.compiler.kinds.host;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.HostTensorSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SiteException;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;
import java.util.function.Function;

/**
 * A kind that trains host tensors themselves, found by one rule: {@link #BIT_FIT} (Ben Zaken et
 * al. 2022: the host's biases, {@link HostTensorSite#biases}) and {@link #LAYER_NORM} (layer
 * norms' scales and biases, {@link HostTensorSite#layerNorms}). Sites are selected by
 * initializer name (e.g. {@code .*attention.*}); each becomes a parameter initialized from the
 * host, not decayed, saved as {@code base_model.model.<name>} (PEFT's layout for host tensors).
 */
public final class HostTensorKind implements AdapterKind {
  public static final HostTensorKind BIT_FIT = new HostTensorKind("bitfit", "BitFit", "dev.graft.annotations.BitFit", "bias",
      HostTensorSite::biases,
      "the host has no bias: no 1-D initializer added after a linear layer and no initializer named *.bias");
  public static final HostTensorKind LAYER_NORM = new HostTensorKind("layernorm", "LayerNorm tuning",
      "dev.graft.annotations.LayerNormTuning", "layer norm tensor", HostTensorSite::layerNorms,
      "the host has no LayerNorm: looked for LayerNormalization nodes and for"
          + " (x - mean) / sqrt(var + eps) * weight + bias with initializer weight and bias");

  private final String id;
  private final String displayName;
  private final String annotation;
  private final String siteDescription;
  private final Function<Graph, List<HostTensorSite>> finder;
  private final String notFound;

  private HostTensorKind(String id, String displayName, String annotation, String siteDescription,
      Function<Graph, List<HostTensorSite>> finder, String notFound) {
    this.id = id;
    this.displayName = displayName;
    this.annotation = annotation;
    this.siteDescription = siteDescription;
    this.finder = finder;
    this.notFound = notFound;
  }

  @Override
  public String quantizationRefused() {
    return "it trains the host's own tensors (biases, layer-norm scales), which are vectors";
  }

  @Override
  public String id() {
    return id;
  }

  @Override
  public String displayName() {
    return displayName;
  }

  @Override
  public String annotation() {
    return annotation;
  }

  @Override
  public List<AdapterOption> options() {
    return List.of();
  }

  @Override
  public String siteDescription() {
    return siteDescription;
  }

  @Override
  public List<HostTensorSite> candidates(Graph graph) {
    List<HostTensorSite> sites = finder.apply(graph);
    if (sites.isEmpty()) {
      throw new SiteException(notFound);
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
