package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.train.TrainingResult;
import java.nio.file.Path;

/**
 * MoSA (Zhang et al., arXiv 2312.02923, 2023) at its defaults: a Pfeiffer bottleneck (reduction
 * 16) after each feed-forward output, split into 4 sparse modules, 1 trained per step; learning
 * rate 2e-3 as the LoRA row. Saved: the merged adapter.
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
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42))) {
      TrainingResult result = PapersBenchmark.trainer(context.epochs(), 2e-3f)
          .fit(model, context.data().train(), context.data().heldOut());
      model.saveAdapter(saved);
      return new PaperResult(name(), model.getParameterCount(), PapersBenchmark.bytes(saved),
          result.finalAccuracy(), result.stepsPerSecond(), "each step trains about 1/4 of the adapter's entries");
    }
  }
}
