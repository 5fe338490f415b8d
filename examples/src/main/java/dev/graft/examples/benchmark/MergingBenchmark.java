package dev.graft.examples.benchmark;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.merge.AdapterDelta;
import dev.graft.runtime.merge.Merge;
import dev.graft.runtime.merge.MergeResult;
import dev.graft.runtime.train.Trainer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * The merging benchmark, one run, printing Markdown tables. Sections (all by default, or those
 * named by {@code --sections a,b}):
 *
 * <ul>
 *   <li>{@code task}: task merging. A LoRA (r8, alpha 16, query and value of all-MiniLM-L6-v2, a
 *       2-class head) is trained on each of two sources of the sentiment data (amazon, yelp; 800
 *       sentences each, same schedule); each merge method combines the two, and every result is
 *       exported as a merged ONNX model (the exact {@code W + ΔW}) and scored by a bare ONNX Runtime
 *       session on each source's held-out 200 and on all 1000 of the third source (imdb). Two
 *       rows re-factor a merge to rank 8 by SVD and score it as a LoRA r8 graft.
 * </ul>
 *
 * A further section is a method {@code (context) -> table} added to {@link #SECTIONS}.
 *
 * <p>Arguments (optional): {@code --sections task}, {@code --epochs N} (default 2), {@code --work
 * DIR} (default {@code target/merging-benchmark}).
 */
public final class MergingBenchmark {
  /** What every section may use: the host, the data by source, the schedule and a scratch folder. */
  record Context(HostModel host, Map<String, SentimentData> sources, int epochs, Path work) {}

  interface Section {
    String run(Context context);
  }

  static final Map<String, Section> SECTIONS = new LinkedHashMap<>();

  static {
    SECTIONS.put("task", MergingBenchmark::taskMerging);
  }

  private static final List<String> TRAINED = List.of("amazon", "yelp");
  private static final String UNSEEN = "imdb";

  private MergingBenchmark() {}

  public static void main(String[] args) {
    int epochs = 2;
    Path work = Path.of("target", "merging-benchmark");
    List<String> sections = new ArrayList<>(SECTIONS.keySet());
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--epochs" -> epochs = Integer.parseInt(value(args, ++i));
        case "--work" -> work = Path.of(value(args, ++i));
        case "--sections" -> sections = List.of(value(args, ++i).split(","));
        default -> throw new IllegalArgumentException("unknown argument '" + args[i]
            + "'; expected --sections " + String.join(",", SECTIONS.keySet()) + ", --epochs N or --work DIR");
      }
    }
    for (String s : sections) {
      if (!SECTIONS.containsKey(s)) {
        throw new IllegalArgumentException("unknown section '" + s + "'; expected one of " + SECTIONS.keySet());
      }
    }
    long start = System.nanoTime();
    Context context = new Context(SentimentData.readHost(), SentimentData.bySource(), epochs, work);
    StringBuilder out = new StringBuilder();
    for (String s : sections) {
      out.append(SECTIONS.get(s).run(context)).append('\n');
    }
    System.out.print(out);
    System.out.printf(Locale.ROOT, "wall_s=%.0f%n", (System.nanoTime() - start) / 1e9);
  }

  /** One merge of the table: its label, settings, and how it is made from the two inputs. */
  private record Row(String label, String settings, Supplier<MergeResult> merge) {}

  static String taskMerging(Context c) {
    CompiledGraft lora = Graft.host(c.host()).name("MergeLora")
        .lora(".*/attention/self/(query|value)/MatMul", o -> o.rank(8).alpha(16)).classification(2).compile();
    ModelOptions options = ModelOptions.defaults().withSeed(42);
    Trainer trainer = AdapterBenchmark.trainer(c.epochs(), 2e-3f);
    Map<String, AdapterDelta> deltas = new LinkedHashMap<>();
    Map<String, double[]> alone = new LinkedHashMap<>();
    try (AdapterModel model = AdapterModel.open(Graft.graphs(lora), options)) {
      for (String source : TRAINED) {
        model.initialize();
        long t = System.nanoTime();
        trainer.fit(model, c.sources().get(source).train(), c.sources().get(source).heldOut());
        System.err.printf(Locale.ROOT, "task merging: %s adapter trained in %.0f s%n", source,
            (System.nanoTime() - t) / 1e9);
        deltas.put(source, model.delta(source));
        alone.put(source, scores(c, s -> trainer.evaluate(model, s)));
      }
    }
    AdapterDelta a = deltas.get(TRAINED.get(0));
    AdapterDelta b = deltas.get(TRAINED.get(1));
    List<Row> rows = List.of(
        new Row("linear", "w 0.5, 0.5", () -> Merge.method("linear").add(a, 1).add(b, 1).run()),
        new Row("cat", "w 0.5, 0.5 (rank 16)", () -> Merge.method("cat").add(a, 0.5).add(b, 0.5).run()),
        new Row("task_arithmetic", "w 1, 1, λ 1", () -> Merge.method("task_arithmetic").add(a, 1).add(b, 1).run()),
        new Row("ties", "w 1, 1, density 0.2", () -> Merge.method("ties").density(0.2).add(a, 1).add(b, 1).run()),
        new Row("dare_linear", "w 0.5, 0.5, p 0.5, seed 42",
            () -> Merge.method("dare_linear").dropRate(0.5).seed(42).add(a, 0.5).add(b, 0.5).run()),
        new Row("dare_ties", "w 1, 1, p 0.5, seed 42",
            () -> Merge.method("dare_ties").dropRate(0.5).seed(42).add(a, 1).add(b, 1).run()),
        new Row("magnitude_prune", "w 0.5, 0.5, density 0.2",
            () -> Merge.method("magnitude_prune").density(0.2).add(a, 0.5).add(b, 0.5).run()),
        new Row("ab_linear (approximate)", "w 0.5, 0.5",
            () -> Merge.method("ab_linear").add(a, 0.5).add(b, 0.5).run()));
    StringBuilder t = new StringBuilder();
    t.append(String.format(Locale.ROOT, "Task merging: LoRA r8 adapters trained on %s and on %s (%d epochs each),"
        + " merged; accuracy on each source's held-out 200 and on all 1000 of %s (never trained on).%n%n",
        TRAINED.get(0), TRAINED.get(1), c.epochs(), UNSEEN));
    t.append(String.format(Locale.ROOT, "| model | settings | %s held-out | %s held-out | %s (unseen) | mean |%n",
        TRAINED.get(0), TRAINED.get(1), UNSEEN));
    t.append("|---|---|---|---|---|---|\n");
    for (String source : TRAINED) {
      line(t, source + " adapter alone", "trained on " + source, alone.get(source));
    }
    Path export = c.work().resolve("merged");
    Map<String, MergeResult> kept = new HashMap<>();
    try (AdapterModel target = AdapterModel.open(Graft.graphs(lora), options.withTraining(false))) {
      for (Row row : rows) {
        long t0 = System.nanoTime();
        MergeResult r = row.merge().get();
        kept.put(row.label(), r);
        r.exportMerged(target, export, ExportOptions.defaults());
        double[] s = onnxScores(c, export.resolve("model.onnx"));
        System.err.printf(Locale.ROOT, "task merging: %s merged, exported and scored in %.0f s%n", row.label(),
            (System.nanoTime() - t0) / 1e9);
        line(t, row.label(), row.settings(), s);
      }
      for (String method : List.of("linear", "ties")) {
        long t0 = System.nanoTime();
        MergeResult r = kept.get(method).toRank(8);
        r.loadInto(target);
        double worst = r.discarded().values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
        line(t, method + " → SVD rank 8", String.format(Locale.ROOT, "as a LoRA r8; max discarded ‖·‖_F %.3g", worst),
            scores(c, s -> trainer.evaluate(target, s)));
        System.err.printf(Locale.ROOT, "task merging: %s re-factored to rank 8 and scored in %.0f s%n", method,
            (System.nanoTime() - t0) / 1e9);
      }
    }
    deleteQuietly(export);
    return t.toString();
  }

  private static void line(StringBuilder t, String label, String settings, double[] s) {
    t.append(String.format(Locale.ROOT, "| %s | %s | %.3f | %.3f | %.3f | %.3f |%n", label, settings, s[0], s[1], s[2],
        (s[0] + s[1] + s[2]) / 3));
  }

  /** Accuracy on the trained sources' held-out parts and on the whole unseen source, by {@code evaluate}. */
  private static double[] scores(Context c, java.util.function.ToDoubleFunction<List<Example>> evaluate) {
    SentimentData unseen = c.sources().get(UNSEEN);
    List<Example> all = new ArrayList<>(unseen.train());
    all.addAll(unseen.heldOut());
    return new double[] {evaluate.applyAsDouble(c.sources().get(TRAINED.get(0)).heldOut()),
        evaluate.applyAsDouble(c.sources().get(TRAINED.get(1)).heldOut()), evaluate.applyAsDouble(all)};
  }

  /** {@link #scores} of an exported ONNX model run by a bare ONNX Runtime session ({@link ExportAccuracy}). */
  private static double[] onnxScores(Context c, Path model) {
    try (ExportAccuracy accuracy = ExportAccuracy.open(model)) {
      return scores(c, accuracy::of);
    }
  }

  static void deleteQuietly(Path dir) {
    try {
      if (Files.exists(dir)) {
        try (var s = Files.walk(dir)) {
          s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException(args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
