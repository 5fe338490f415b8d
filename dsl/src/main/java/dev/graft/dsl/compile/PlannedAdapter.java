package dev.graft.dsl.compile;

import dev.graft.dsl.adapter.AdapterKind;
import dev.graft.dsl.adapter.Site;
import dev.graft.dsl.spec.AdapterSpec;
import java.util.List;

/** An adapter declaration as validation leaves it: options checked and defaulted, kind resolved, sites chosen. */
record PlannedAdapter(AdapterSpec spec, AdapterKind kind, List<? extends Site> sites) {
  PlannedAdapter {
    sites = List.copyOf(sites);
  }
}
