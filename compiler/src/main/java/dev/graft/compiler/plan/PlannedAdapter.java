package dev.graft.compiler.plan;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;

/** An adapter declaration as validation leaves it: options checked and defaulted, kind resolved, sites chosen. */
public record PlannedAdapter(AdapterSpec spec, AdapterKind kind, List<? extends Site> sites) {
  public PlannedAdapter {
    sites = List.copyOf(sites);
  }
}
