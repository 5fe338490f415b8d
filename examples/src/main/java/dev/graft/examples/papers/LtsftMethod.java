package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.train.SparseFineTuning;
import java.nio.file.Path;
import java.util.Locale;

/**
 * LT-SFT (Ansell et al., ACL 2022) on the query and value weights (LoRA's sites), K = 73,728
 * entries (LoRA r8's parameter count there): phase 1 dense, phase 2 the K entries of largest
 * |θ1 − θ0| from θ0, each phase the benchmark's epochs at learning rate 2e-4. Saved: the sparse
 * difference. Trainable parameters: K (the task head, also trained, is not counted).
 */
final class LtsftMethod implements PaperMethod {
  static final long K = 73_728;

  @Override
  public String id() {
    return "ltsft";
  }

  @Override
  public String name() {
    return "LT-SFT K=73728 on query/value (Ansell et al. 2022)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersLtsft")
        .sparseFineTuning(".*/attention/self/(query|value)/MatMul").classification(2).compile();
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42))) {
      SparseFineTuning.Result r = SparseFineTuning.train(model, PapersBenchmark.trainer(context.epochs(), 2e-4f),
          PapersBenchmark.trainer(context.epochs(), 2e-4f), K, SparseFineTuning.Selection.GLOBAL,
          context.data().train(), context.data().heldOut(), System.err);
      r.diff().write(saved.resolve("sparse_diff.safetensors"));
      return new PaperResult(name(), r.diff().size(), PapersBenchmark.bytes(saved), r.phase2().finalAccuracy(),
          r.phase2().stepsPerSecond(), String.format(Locale.ROOT, "phase1_accuracy=%.4f phase1_steps_per_s=%.2f",
              r.phase1().finalAccuracy(), r.phase1().stepsPerSecond()));
    }
  }
}
