package dev.graft.examples.benchmark;

import dev.graft.examples.sentiment.SentimentData;
import dev.graft.examples.sentiment.SentimentLoraGraft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.train.CheckpointAverage;
import dev.graft.runtime.train.CheckpointKeeper;
import dev.graft.runtime.train.KeptCheckpoints;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.MetricsWeighting;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * Checkpoint merging on the sentiment example, one run: the LoRA of {@code SentimentExample}
 * (rank 8 on query and value of all-MiniLM-L6-v2, the same data, schedule and seeds) is trained
 * once while a {@link CheckpointKeeper} keeps one checkpoint every {@code total / 10} steps (the
 * last 10 kept); then the final model, the uniform average and the MWA-style loss-weighted and
 * step-weighted averages at {@code p ∈ {0.5, 1, 2}} over the last {@code K = 5} and {@code K = 10}
 * checkpoints are scored on the held-out sentences.
 *
 * <p>Each average is taken in both spaces ({@link CheckpointAverage}): in parameter space (each
 * tensor averaged, scored through the graft's inference graph) and in {@code ΔW} space (the merge
 * registry's {@code linear} over each checkpoint's {@code A·B}, exact at any rank, written as a
 * merged ONNX model and scored in a plain ONNX Runtime session). Prints a Markdown table and one
 * {@code result: key=value ...} line.
 *
 * <p>Arguments (all optional): {@code --epochs N} (default 3), {@code --every N} (steps between
 * checkpoints; default a tenth of the run), {@code --work DIR} (default {@code
 * target/checkpoint-merging}; replaced by a training run), {@code --train-only} (train and keep,
 * do not score), {@code --score-only} (score what a training run with the same settings kept in
 * {@code DIR/kept}; the final model is its last checkpoint).
 */
public final class CheckpointMergingBenchmark {
  private static final int[] KS = {5, 10};
  private static final double[] PS = {0.5, 1, 2};

  private CheckpointMergingBenchmark() {}

  /** One scored row: K, the weighting's label, accuracy in parameter space and in ΔW space, the largest weight. */
  record Row(int k, String weighting, double parameters, double deltaW, double maxWeight) {}

  public static void main(String[] args) throws Exception {
    long start = System.nanoTime();
    int epochs = 3;
    int every = 0;
    Path work = Path.of("target", "checkpoint-merging");
    boolean trainOnly = false;
    boolean scoreOnly = false;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--epochs" -> epochs = Integer.parseInt(value(args, ++i));
        case "--every" -> every = Integer.parseInt(value(args, ++i));
        case "--work" -> work = Path.of(value(args, ++i));
        case "--train-only" -> trainOnly = true;
        case "--score-only" -> scoreOnly = true;
        default -> throw new IllegalArgumentException("unknown argument '" + args[i]
            + "'; expected --epochs N, --every N, --work DIR, --train-only or --score-only");
      }
    }
    SentimentData data = SentimentData.load();
    List<Example> train = data.train();
    List<Example> heldOut = data.heldOut();
    int stepsPerEpoch = (train.size() + 15) / 16;
    long totalSteps = (long) stepsPerEpoch * epochs;
    if (every == 0) {
      every = (int) Math.max(1, totalSteps / 10);
    }
    Path folder = work.resolve("kept");
    Trainer trainer = Trainer.builder()
        .batchSize(16).epochs(epochs).learningRate(LearningRate.linear(2e-3f, 0.1)).seed(1)
        .listener(CheckpointKeeper.into(folder).every(every).keepLast(10).build())
        .build();
    ModelOptions options = ModelOptions.defaults().withSeed(42);
    try (SentimentLoraGraft lora = SentimentLoraGraft.load(options)) {
      AdapterModel model = lora.model();
      if (!scoreOnly) {
        deleteTree(work);
        TrainingResult run = trainer.fit(model, train, heldOut);
        System.err.printf(Locale.ROOT, "trained: %d steps, final held-out accuracy %.4f, %.1f s%n", run.steps(),
            run.finalAccuracy(), (System.nanoTime() - start) / 1e9);
      }
      if (!trainOnly) {
        score(trainer, model, KeptCheckpoints.read(folder), heldOut, work, epochs, totalSteps, every, start);
      }
    }
  }

  /**
   * Scores the kept checkpoints: the last one (the final model, when the interval divides the
   * run) and every average, in both spaces.
   */
  private static void score(Trainer trainer, AdapterModel model, KeptCheckpoints kept, List<Example> heldOut,
      Path work, int epochs, long totalSteps, int every, long start) throws Exception {
    KeptCheckpoints.Checkpoint lastKept = kept.checkpoints().get(kept.checkpoints().size() - 1);
    if (lastKept.step() != totalSteps) {
      throw new IllegalStateException("the last kept checkpoint is of step " + lastKept.step() + ", the run has "
          + totalSteps + " steps: choose --every to divide the run");
    }
    System.err.printf(Locale.ROOT, "kept: steps %s, window losses %s%n",
        kept.checkpoints().stream().map(c -> Long.toString(c.step())).collect(Collectors.joining(", ")),
        kept.checkpoints().stream().map(c -> String.format(Locale.ROOT, "%.4f", c.trainLoss()))
            .collect(Collectors.joining(", ")));
    CheckpointAverage.of(List.of(lastKept), MetricsWeighting.uniform()).inParameters(model);
    double finalAccuracy = trainer.evaluate(model, heldOut);
    Map<String, float[]> trained = model.getParameterValues();
    List<Row> rows = new ArrayList<>();
    for (int k : KS) {
      List<KeptCheckpoints.Checkpoint> last = kept.last(k);
      List<MetricsWeighting> weightings = new ArrayList<>();
      weightings.add(MetricsWeighting.uniform());
      for (double p : PS) {
        weightings.add(MetricsWeighting.loss(p));
      }
      for (double p : PS) {
        weightings.add(MetricsWeighting.step(p));
      }
      for (MetricsWeighting w : weightings) {
        CheckpointAverage average = CheckpointAverage.of(last, w);
        double[] weights = average.weights();
        CheckpointAverage.DeltaAverage byDelta = average.inDeltaW(model);
        Path merged = work.resolve("merged");
        byDelta.exportMerged(model, merged, ExportOptions.defaults());
        double deltaW;
        try (ExportAccuracy accuracy = ExportAccuracy.open(merged.resolve(ExportOptions.defaults().modelFile()))) {
          deltaW = accuracy.of(heldOut);
        }
        average.inParameters(model);
        double parameters = trainer.evaluate(model, heldOut);
        trained.forEach(model::setParameter);
        double max = Arrays.stream(weights).max().orElseThrow();
        rows.add(new Row(k, w.label(), parameters, deltaW, max));
        System.err.printf(Locale.ROOT, "K=%d %-10s parameters %.4f  ΔW %.4f  weights %s%n", k, w.label(),
            parameters, deltaW, Arrays.stream(weights).mapToObj(x -> String.format(Locale.ROOT, "%.3f", x))
                .collect(Collectors.joining(" ")));
      }
    }
    double wall = (System.nanoTime() - start) / 1e9;
    System.out.printf(Locale.ROOT, "Checkpoint merging, sentiment example (LoRA r8 on query/value, %d epochs, %d steps;"
        + " a checkpoint every %d steps; %d held-out sentences)%n%n", epochs, totalSteps, every, heldOut.size());
    System.out.printf(Locale.ROOT, "final checkpoint (step %d): held-out accuracy %.4f%n%n", totalSteps, finalAccuracy);
    System.out.println("| K | weighting | parameter space | ΔW space (linear) | largest weight |");
    System.out.println("|---|---|---|---|---|");
    for (Row r : rows) {
      System.out.printf(Locale.ROOT, "| %d | %s | %.4f | %.4f | %.3f |%n", r.k(), r.weighting(), r.parameters(),
          r.deltaW(), r.maxWeight());
    }
    Row bestParameters = rows.stream().max(Comparator.comparingDouble(Row::parameters)).orElseThrow();
    Row bestDelta = rows.stream().max(Comparator.comparingDouble(Row::deltaW)).orElseThrow();
    System.out.printf(Locale.ROOT, "result: final_accuracy=%.4f best_parameters=%.4f (K=%d %s) best_delta_w=%.4f"
            + " (K=%d %s) steps=%d every=%d wall_s=%.1f%n", finalAccuracy, bestParameters.parameters(),
        bestParameters.k(), bestParameters.weighting().replace(' ', '_'), bestDelta.deltaW(), bestDelta.k(),
        bestDelta.weighting().replace(' ', '_'), totalSteps, every, wall);
  }

  private static void deleteTree(Path root) throws java.io.IOException {
    if (!Files.exists(root)) {
      return;
    }
    try (var s = Files.walk(root)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(p);
      }
    }
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException("argument " + args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
