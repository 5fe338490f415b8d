package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Path;

/**
 * SoKA on query and value: the principal Kronecker-product SVD terms of each weight (K the fewer
 * of the energy-0.9 and the elbow counts, at most 8; near-square split 384 = 16·24) train, the
 * residual stays (folded into each weight); learning rate 2e-3 as the reference row.
 */
final class SokaMethod implements PaperMethod {
  @Override
  public String id() {
    return "soka";
  }

  @Override
  public String name() {
    return "SoKA, energy 0.9 and elbow, ≤ 8 terms";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersSoka")
        .soka(".*/attention/self/(query|value)/MatMul", o -> o.set("rule", "both").set("energy", 0.9).set("maxTerms", 8))
        .classification(2).compile();
    // dA is [K·i1, o1]; query and value are 384 → 384, split alike, so i1 = o1 and K = rows / columns.
    long terms = 0;
    int sites = 0;
    for (Parameter p : graft.manifest().getParametersList()) {
      if (p.getName().endsWith("soka_dA")) {
        terms += p.getShape(0) / p.getShape(1);
        sites++;
      }
    }
    return PapersBenchmark.trainAndSave(name(), graft, 2e-3f, context, saved, "terms=" + terms + "/" + sites + "_sites");
  }
}
