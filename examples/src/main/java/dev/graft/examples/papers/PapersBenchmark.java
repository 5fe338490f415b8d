package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * The source papers' methods on the sentiment example in one run, each beside LoRA r8 trained with the same
 * data, batches (16), schedule and seeds: trainable parameters, saved bytes, held-out accuracy, steps/s.
 *
 * <p>Arguments (all optional): {@code --epochs N} (default 2), {@code --only a,b} (row ids),
 * {@code --out DIR} (where adapters are saved; default {@code target/papers-benchmark}).
 */
public final class PapersBenchmark {
  private PapersBenchmark() {}

  /** Every row, the reference first. A new method adds one line here. */
  static List<PaperMethod> methods() {
    return List.of(new LoraBaseline(), new QuantizedLoraMethod(), new CordaMethod(), new EarthMethod(),
        new MosaMethod(), new LtsftMethod(), new SemaMethod(), new SokaMethod(), SketchTuneMethod.groupsOf8(),
        SketchTuneMethod.perChannelGpr4());
  }

  public static void main(String[] args) throws Exception {
    int epochs = 2;
    List<String> only = List.of();
    Path out = Path.of("target", "papers-benchmark");
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--epochs" -> epochs = Integer.parseInt(value(args, ++i));
        case "--only" -> only = List.of(value(args, ++i).split(","));
        case "--out" -> out = Path.of(value(args, ++i));
        default -> throw new IllegalArgumentException(
            "unknown argument '" + args[i] + "'; expected --epochs N, --only a,b or --out DIR");
      }
    }
    long start = System.nanoTime();
    SentimentData data = SentimentData.load();
    PaperMethod.Context context = new PaperMethod.Context(SentimentData.readHost(), data, epochs);
    List<PaperResult> results = new ArrayList<>();
    for (PaperMethod method : methods()) {
      if (!only.isEmpty() && !only.contains(method.id())) {
        continue;
      }
      System.err.println("== " + method.name());
      Path saved = out.resolve(method.id());
      deleteRecursively(saved);
      Files.createDirectories(saved);
      PaperResult r = method.run(context, saved);
      results.add(r);
      System.out.printf(Locale.ROOT, "row: %s params=%d saved_bytes=%d accuracy=%.4f steps_per_s=%.2f%s%n",
          r.name(), r.trainableParameters(), r.savedBytes(), r.accuracy(), r.stepsPerSecond(),
          r.extra().isEmpty() ? "" : " " + r.extra());
    }
    System.out.println();
    System.out.printf(Locale.ROOT, "%d epochs, batch 16, %d train / %d held-out sentences, host %s, CPU, one run%n%n",
        epochs, data.train().size(), data.heldOut().size(), SentimentData.HOST);
    System.out.println("| method | trainable parameters | saved bytes | held-out accuracy | steps/s |");
    System.out.println("|---|---:|---:|---:|---:|");
    for (PaperResult r : results) {
      System.out.printf(Locale.ROOT, "| %s | %,d | %,d | %.4f | %.2f |%n", r.name(), r.trainableParameters(),
          r.savedBytes(), r.accuracy(), r.stepsPerSecond());
    }
    for (PaperResult r : results) {
      if (!r.extra().isEmpty()) {
        System.out.println();
        System.out.println(r.name() + ": " + r.extra());
      }
    }
    System.out.printf(Locale.ROOT, "%nwall_s=%.1f%n", (System.nanoTime() - start) / 1e9);
  }

  /** The schedule every row trains with: batch 16, linear warm-up over 10% then decay to 0 from {@code learningRate}. */
  static Trainer trainer(int epochs, float learningRate) {
    return Trainer.builder().batchSize(16).epochs(epochs).learningRate(LearningRate.linear(learningRate, 0.1)).seed(1)
        .build();
  }

  /**
   * The usual row: opens {@code graft}, trains it with {@link #trainer} at {@code learningRate}, saves its adapter
   * into {@code saved} and reports it as {@code name}, with {@code extra} printed after the table.
   */
  static PaperResult trainAndSave(String name, CompiledGraft graft, float learningRate, PaperMethod.Context context,
      Path saved, String extra) {
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42))) {
      TrainingResult result = trainer(context.epochs(), learningRate)
          .fit(model, context.data().train(), context.data().heldOut());
      model.saveAdapter(saved);
      return new PaperResult(name, model.getParameterCount(), bytes(saved), result.finalAccuracy(),
          result.stepsPerSecond(), extra);
    }
  }

  /** The bytes of every file under {@code dir}. */
  static long bytes(Path dir) {
    try (Stream<Path> files = Files.walk(dir)) {
      return files.filter(Files::isRegularFile).mapToLong(f -> {
        try {
          return Files.size(f);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      }).sum();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void deleteRecursively(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.delete(f);
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
