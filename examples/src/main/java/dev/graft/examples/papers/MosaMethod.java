package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import java.nio.file.Path;

/**
 * MoSA (Zhang et al., arXiv 2312.02923, 2023) at its defaults: a Pfeiffer bottleneck (reduction
 * 16) after each feed-forward output, split into 4 sparse modules, 1 trained per step at each site
 * (each site its own draw); learning rate 2e-3 as the LoRA row. Saved: the merged adapter.
 */
final class MosaMethod implements PaperMethod {
  @Override
  public String id() {
    return "mosa";
  }

  @Override
  public String name() {
    return "MoSA 4 modules, 1 active (Zhang et al. 2023)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersMosa").mosa("", o -> o.modules(4).active(1))
        .classification(2).compile();
    return PapersBenchmark.trainAndSave(name(), graft, 2e-3f, context, saved,
        "each step each site trains about 1/4 of its up projection (the reference's split), drawn"
            + " independently per site (draw = site); the down projection and biases train whole");
  }
}
