package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import java.nio.file.Path;

/**
 * SketchTune on query and value: each weight replaced by 4-bit indices into 16-value codebooks,
 * one per group of {@code groupSize} output channels and, along each channel's inputs, per one of
 * {@code groupsPerRow} column groups; only the codebooks train; learning rate 2e-3 as the
 * reference row. Two rows: the defaults (groups of 8 channels, one codebook per group) and the
 * reference's recipe ({@code sketchtune-gpr4}: per output channel, GPR 4).
 */
final class SketchTuneMethod implements PaperMethod {
  private final String id;
  private final String name;
  private final int groupSize;
  private final int groupsPerRow;

  private SketchTuneMethod(String id, String name, int groupSize, int groupsPerRow) {
    this.id = id;
    this.name = name;
    this.groupSize = groupSize;
    this.groupsPerRow = groupsPerRow;
  }

  /** Groups of 8 output channels, one codebook each (the kind's defaults). */
  static SketchTuneMethod groupsOf8() {
    return new SketchTuneMethod("sketchtune", "SketchTune groups of 8, int4", 8, 1);
  }

  /** A codebook per quarter of each output channel's inputs (the reference's recipes' GPR = 4). */
  static SketchTuneMethod perChannelGpr4() {
    return new SketchTuneMethod("sketchtune-gpr4", "SketchTune per channel, 4 groups per row, int4", 1, 4);
  }

  @Override
  public String id() {
    return id;
  }

  @Override
  public String name() {
    return name;
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersSketchTune")
        .sketchTune(".*/attention/self/(query|value)/MatMul", o -> o.groupSize(groupSize).groupsPerRow(groupsPerRow))
        .classification(2).compile();
    return PapersBenchmark.trainAndSave(name(), graft, 2e-3f, context, saved, "");
  }
}
