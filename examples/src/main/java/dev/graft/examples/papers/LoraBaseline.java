package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import java.nio.file.Path;

/** The reference row: LoRA r8 on query and value (the sentiment example's declaration), learning rate 2e-3. */
final class LoraBaseline implements PaperMethod {
  @Override
  public String id() {
    return "lora";
  }

  @Override
  public String name() {
    return "LoRA r8 (reference)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersLora").lora(".*/attention/self/(query|value)/MatMul", o -> o.rank(8).alpha(16))
        .classification(2).compile();
    return PapersBenchmark.trainAndSave(name(), graft, 2e-3f, context, saved, "");
  }
}
