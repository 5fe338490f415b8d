package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.merge.Merge;
import dev.graft.runtime.train.TrainingResult;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * CorDA (Yang et al., NeurIPS 2024), instruction-previewed mode: LoRA r8 on query and value whose A and B
 * start at the largest factors of the host weight times the covariance of each layer's inputs, calibrated
 * on the first 256 training sentences (batches of 16) before training; learning rate 2e-3 as the reference.
 * Saved as its adapter (A, B, head); the extra column gives the plain LoRA r16 it converts to on the
 * original host (PEFT's {@code path_initial_model_for_weight_conversion}) and the calibration time.
 */
final class CordaMethod implements PaperMethod {
  private static final String SITES = ".*/attention/self/(query|value)/MatMul";
  private static final int CALIBRATION_SENTENCES = 256;

  @Override
  public String id() {
    return "corda";
  }

  @Override
  public String name() {
    return "CorDA IPM r8 (Yang et al., NeurIPS 2024)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersCorda")
        .lora(SITES, o -> o.rank(8).alpha(16).init("corda_ipm")).classification(2).compile();
    List<Example> train = context.data().train();
    List<Batch> calibration = new ArrayList<>();
    for (int i = 0; i < Math.min(CALIBRATION_SENTENCES, train.size()); i += 16) {
      calibration.add(Batch.of(train.subList(i, Math.min(i + 16, Math.min(CALIBRATION_SENTENCES, train.size())))));
    }
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42))) {
      long start = System.nanoTime();
      model.calibrate(calibration);
      double calibrationSeconds = (System.nanoTime() - start) / 1e9;
      TrainingResult result = PapersBenchmark.trainer(context.epochs(), 2e-3f)
          .fit(model, train, context.data().heldOut());
      model.saveAdapter(saved);
      long bytes = PapersBenchmark.bytes(saved);
      Path plain = saved.resolve("plain-lora-r16");
      CompiledGraft target = Graft.host(context.host()).name("PapersCordaPlain")
          .lora(SITES, o -> o.rank(16).alpha(32)).classification(2).compile();
      Merge.method("cat").add(model.delta("corda"), 1).run().savePeft(plain, target.manifest());
      return new PaperResult(name(), model.getParameterCount(), bytes, result.finalAccuracy(), result.stepsPerSecond(),
          String.format(Locale.ROOT, "calibration %d sentences in %.1f s; as plain LoRA r16 on the original host: %,d bytes",
              calibration.stream().mapToInt(b -> b.labels().length).sum(), calibrationSeconds,
              PapersBenchmark.bytes(plain)));
    }
  }
}
