package dev.graft.compiler.kinds.host;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ModuleSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.ArrayList;
import java.util.List;

/**
 * Full tuning of chosen linear layers (PEFT's {@code modules_to_save}): the weight and bias of
 * every linear site the selector matches become parameters initialized from the host. The weight
 * is decayed, the bias not. Saved as PEFT saves modules to save: {@code
 * base_model.model.<module>.weight} in torch's {@code [out, in]} and {@code .bias}. A target is
 * required.
 */
public final class FullTuningKind implements AdapterKind {
  @Override
  public String quantizationRefused() {
    return "it trains the host's own weights, which the host's exports and merges read in full precision";
  }

  @Override
  public String id() {
    return "full";
  }

  @Override
  public String displayName() {
    return "Full tuning";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.TrainModules";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of();
  }

  @Override
  public List<ModuleSite> candidates(Graph graph) {
    return ModuleSite.find(graph);
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> out = new ArrayList<>(AdapterKind.optionsInvalid(this, spec, problems(spec, sites)));
    for (Site s : sites) {
      ModuleSite site = (ModuleSite) s;
      if (site.int8()) {
        out.add(Diagnostic.of(ErrorCode.INT8_SITE_UNSUPPORTED, spec.source(), "target",
            displayName(), "(training the weight)", site.node(), "its weight '" + site.weight() + "' is int8"
                + " (MatMulInteger) and stays frozen: an int8 tensor has no gradient"));
      }
    }
    return out;
  }

  private static List<String> problems(AdapterSpec spec, List<? extends Site> sites) {
    if (spec.target().isEmpty()) {
      return List.of("full tuning needs a target naming the linear layers to train in full (it would train all "
          + sites.size() + " otherwise), e.g. target = \".*/output/dense/MatMul\"");
    }
    return List.of();
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    for (Site s : sites) {
      ModuleSite site = (ModuleSite) s;
      HostParameters.train(placement, site, site.weight(), "weight", false,
          Placement.peftKey(site, "weight"), !site.outFirst());
      site.bias().ifPresent(b -> HostParameters.train(placement, site, b, "bias", true,
          Placement.peftKey(site, "bias"), false));
    }
  }
}
