package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import java.nio.file.Path;

/**
 * SketchTune on query and value: each weight replaced by 4-bit indices into 16-value codebooks,
 * one per group of 8 output channels, only the codebooks training; learning rate 2e-3 as the
 * reference row.
 */
final class SketchTuneMethod implements PaperMethod {
  @Override
  public String id() {
    return "sketchtune";
  }

  @Override
  public String name() {
    return "SketchTune groups of 8, int4";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersSketchTune")
        .sketchTune(".*/attention/self/(query|value)/MatMul", o -> o.set("groupSize", 8))
        .classification(2).compile();
    return PapersBenchmark.trainAndSave(name(), graft, 2e-3f, context, saved, "");
  }
}
