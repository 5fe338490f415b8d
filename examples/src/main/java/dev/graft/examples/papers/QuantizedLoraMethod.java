package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.io.QuantizedAdapters;
import dev.graft.runtime.train.TrainingResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Quantized adapters (Jie et al., "Revisiting the Parameter Efficiency of Adapters from the
 * Perspective of Precision Redundancy", ICCV 2023): the reference LoRA r8 with its A and B trained
 * at 1 bit (straight-through Lloyd-Max quantization of each standardized tensor), saved bit-packed;
 * then again at 4 bits, reported after the table.
 */
final class QuantizedLoraMethod implements PaperMethod {
  @Override
  public String id() {
    return "quant";
  }

  @Override
  public String name() {
    return "LoRA r8 at 1 bit (Jie et al., ICCV 2023)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    Row one = train(context, saved.resolve("1bit"), 1);
    Row four = train(context, saved.resolve("4bit"), 4);
    return new PaperResult(name(), one.parameters(), one.packedBytes(), one.result().finalAccuracy(),
        one.result().stepsPerSecond(), String.format(Locale.ROOT, "1 bit: %d bytes bit-packed (LoRA's fp32 PEFT"
            + " folder of the same model: %d bytes); 4 bits: accuracy %.4f, %d bytes bit-packed, %.2f steps/s",
            one.packedBytes(), one.fp32Bytes(), four.result().finalAccuracy(), four.packedBytes(),
            four.result().stepsPerSecond()));
  }

  private record Row(long parameters, long packedBytes, long fp32Bytes, TrainingResult result) {}

  private static Row train(Context context, Path dir, int bits) throws Exception {
    CompiledGraft graft = Graft.host(context.host()).name("PapersQuant" + bits)
        .lora(".*/attention/self/(query|value)/MatMul", o -> o.rank(8).alpha(16).quantizeBits(bits))
        .classification(2).compile();
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42))) {
      TrainingResult result = PapersBenchmark.trainer(context.epochs(), 2e-3f)
          .fit(model, context.data().train(), context.data().heldOut());
      Files.createDirectories(dir);
      Path packed = dir.resolve(QuantizedAdapters.FILE);
      model.saveQuantizedAdapter(packed);
      Path fp32 = dir.resolve("fp32");
      model.saveAdapter(fp32);
      long fp32Bytes = PapersBenchmark.bytes(fp32);
      return new Row(model.getParameterCount(), Files.size(packed), fp32Bytes, result);
    }
  }
}
