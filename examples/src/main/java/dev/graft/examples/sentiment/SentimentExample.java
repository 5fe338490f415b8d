package dev.graft.examples.sentiment;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Fine-tunes all-MiniLM-L6-v2 with LoRA on the UCI Sentiment Labelled Sentences and compares it
 * with a linear probe (a head trained on the frozen host), then saves the adapter in PEFT format
 * and checks that it reloads to identical predictions.
 *
 * <p>The LoRA graft is declared with annotations ({@link SentimentLora}, compiled by the Graft
 * processor into {@code SentimentLoraGraft}); the probe is declared with the builder at run time.
 * Both train on ONNX Runtime (CPU). Ends with one {@code result: key=value ...} line.
 *
 * <p>Arguments (all optional): {@code --epochs N} (default 3), {@code --out DIR} (where the PEFT
 * adapter is saved; default {@code target/sentiment-lora}).
 */
public final class SentimentExample {
  private SentimentExample() {}

  public static void main(String[] args) {
    long start = System.nanoTime();
    int epochs = 3;
    Path out = Path.of("target", "sentiment-lora");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--epochs" -> epochs = Integer.parseInt(value(args, ++i));
        case "--out" -> out = Path.of(value(args, ++i));
        default -> throw new IllegalArgumentException(
            "unknown argument '" + args[i] + "'; expected --epochs N or --out DIR");
      }
    }

    SentimentData data = SentimentData.load();
    List<Example> train = data.train();
    List<Example> heldOut = data.heldOut();

    // LoRA: declared with annotations, compiled by javac.
    ModelOptions options = ModelOptions.defaults().withSeed(42);
    Trainer loraTrainer = Trainer.builder()
        .batchSize(16).epochs(epochs).learningRate(LearningRate.linear(2e-3f, 0.1)).seed(1).build();
    double loraAccuracy;
    long loraParams;
    TrainingResult loraRun;
    boolean reloadIdentical;
    try (SentimentLoraGraft lora = SentimentLoraGraft.load(options)) {
      loraParams = lora.model().getParameterCount();
      System.err.printf(Locale.ROOT, "lora: %d trainable parameters%n", loraParams);
      loraRun = loraTrainer.fit(lora.model(), train, heldOut);
      loraAccuracy = loraRun.finalAccuracy();
      lora.model().saveAdapter(out);
      reloadIdentical = reloadsIdentically(lora, out, heldOut, options);
    }
    System.err.println("lora: adapter saved to " + out.toAbsolutePath());

    // Linear probe: declared with the builder, compiled at run time; the host stays frozen.
    CompiledGraft probeGraft = Graft.host(SentimentData.readHost()).name("SentimentProbe").classification(2).compile();
    Trainer probeTrainer = Trainer.builder()
        .batchSize(16).epochs(epochs).learningRate(LearningRate.linear(1e-2f, 0.1)).seed(1).build();
    double probeAccuracy;
    long probeParams;
    try (AdapterModel probe = AdapterModel.open(Graft.graphs(probeGraft), options)) {
      probeParams = probe.getParameterCount();
      System.err.printf(Locale.ROOT, "probe: %d trainable parameters%n", probeParams);
      probeAccuracy = probeTrainer.fit(probe, train, heldOut).finalAccuracy();
    }

    double wall = (System.nanoTime() - start) / 1e9;
    System.out.printf(Locale.ROOT,
        "result: lora_accuracy=%.4f probe_accuracy=%.4f trainable_params=%d probe_params=%d steps=%d"
            + " steps_per_s=%.2f examples_per_s=%.1f reload_identical=%b wall_s=%.1f%n",
        loraAccuracy, probeAccuracy, loraParams, probeParams, loraRun.steps(), loraRun.stepsPerSecond(),
        loraRun.examplesPerSecond(), reloadIdentical, wall);
  }

  /** Opens a fresh inference-only copy, loads the saved adapter and compares held-out logits bit for bit. */
  static boolean reloadsIdentically(SentimentLoraGraft trained, Path saved, List<Example> heldOut, ModelOptions options) {
    try (SentimentLoraGraft reloaded = SentimentLoraGraft.load(options.withSeed(options.seed() + 1).withTraining(false))) {
      reloaded.model().loadAdapter(saved);
      return SentimentData.samePredictions(trained.model(), reloaded.model(), heldOut);
    }
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException("argument " + args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
