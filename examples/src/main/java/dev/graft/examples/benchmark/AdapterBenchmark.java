package dev.graft.examples.benchmark;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.UnaryOperator;

/**
 * Every adapter kind on the sentiment task, side by side in one run: all-MiniLM-L6-v2 with each
 * kind at its default sites plus a 2-label head, trained with the same data, batches, epochs
 * and seeds (learning rates per kind, as each method's paper recommends in spirit), then saved
 * and reloaded into a fresh model whose held-out predictions must be bit-identical.
 *
 * <p>Prints one line per kind as it finishes and a Markdown table at the end: kind, trainable
 * parameters, held-out accuracy, training steps per second, reload identical. DyLoRA's row is
 * followed by the accuracy of the same trained adapter truncated to ranks 1, 2, 4 and 8.
 *
 * <p>Arguments (all optional): {@code --epochs N} (default 2), {@code --only a,b} (row ids: probe, lora, dora, …),
 * {@code --out DIR} (where adapters are saved; default {@code target/benchmark}).
 */
public final class AdapterBenchmark {
  /**
   * One row: an id for {@code --only}, a name, the declaration (adapters on the host; the head is
   * added), a peak learning rate, and the named adapters trained first, each alone with its own
   * head and the same schedule, whose saved weights the row loads before it trains (a fuse block
   * fuses trained adapters).
   */
  record Row(String id, String name, UnaryOperator<Graft> declare, float learningRate, List<Pretrained> pretrained) {
    Row(String id, String name, UnaryOperator<Graft> declare, float learningRate) {
      this(id, name, declare, learningRate, List.of());
    }
  }

  /** A named adapter trained alone before its row: its name, its declaration and its learning rate. */
  record Pretrained(String name, UnaryOperator<Graft> declare, float learningRate) {}

  /** The feed-forward output layer of every MiniLM layer: where the composition rows' adapters share their sites. */
  static final String FFN_OUT = ".*/layer\\.\\d+/output/dense/MatMul";

  /** LoRA r8 named {@code name} on {@link #FFN_OUT}. */
  static Graft loraOut(Graft g, String name) {
    return g.lora(FFN_OUT, o -> o.name(name));
  }

  /** A Pfeiffer bottleneck (reduction 16) named {@code name} on {@link #FFN_OUT}. */
  static Graft bottleneckOut(Graft g, String name) {
    return g.bottleneck(FFN_OUT, o -> o.name(name));
  }

  static List<Row> rows() {
    return List.of(
        new Row("probe", "head only (probe)", g -> g, 1e-2f),
        new Row("lora", "lora r8", g -> g.lora(""), 2e-3f),
        new Row("dora", "lora r8 dora", g -> g.lora("", o -> o.set("dora", true)), 2e-3f),
        new Row("pissa", "lora r8 pissa", g -> g.lora("", o -> o.set("init", "pissa")), 2e-3f),
        new Row("dylora", "dylora r8", g -> g.adapter("dylora", "", o -> {}), 2e-3f),
        new Row("lokr", "lokr", g -> g.adapter("lokr", "", o -> {}), 2e-3f),
        new Row("loha", "loha r8", g -> g.adapter("loha", "", o -> {}), 2e-3f),
        new Row("vera", "vera r256", g -> g.adapter("vera", "", o -> {}), 1e-2f),
        new Row("ia3", "ia3", g -> g.adapter("ia3", "", o -> {}), 1e-2f),
        new Row("pfeiffer", "bottleneck pfeiffer", g -> g.adapter("bottleneck", "", o -> o.set("config", "pfeiffer")), 1e-3f),
        new Row("houlsby", "bottleneck houlsby", g -> g.adapter("bottleneck", "", o -> o.set("config", "houlsby")), 1e-3f),
        new Row("parallel", "parallel", g -> g.adapter("parallel", "", o -> {}), 1e-3f),
        new Row("hydra", "hydra", g -> g.adapter("hydra", "", o -> {}), 1e-3f),
        new Row("prompt", "prompt tuning 20", g -> g.adapter("prompt_tuning", "", o -> {}), 3e-2f),
        new Row("prefix", "prefix tuning 20", g -> g.adapter("prefix_tuning", "", o -> {}), 1e-2f),
        new Row("bitfit", "bitfit", g -> g.adapter("bitfit", "", o -> {}), 1e-3f),
        new Row("layernorm", "layernorm", g -> g.adapter("layernorm", "", o -> {}), 1e-3f),
        new Row("gated_lora", "gated lora r8 (custom kind)", g -> g.adapter("gated_lora", "", o -> {}), 2e-3f),
        new Row("full", "full last layer (modules_to_save)",
            g -> g.adapter("full", ".*/layer\\.5/(intermediate|output)/dense/MatMul", o -> {}), 5e-4f),
        new Row("stack", "stack(lora, bottleneck)",
            g -> bottleneckOut(loraOut(g, "a"), "b").compose(Graft.stack("a", "b")), 1e-3f),
        new Row("parallel-block", "parallel(lora, bottleneck)",
            g -> bottleneckOut(loraOut(g, "a"), "b").compose(Graft.parallel("a", "b")), 1e-3f),
        new Row("average", "average(lora, bottleneck) learned weights",
            g -> bottleneckOut(loraOut(g, "a"), "b").compose(Graft.average("a", "b")), 1e-3f),
        new Row("split", "split(lora: 192, bottleneck: 192)",
            g -> bottleneckOut(loraOut(g, "a"), "b")
                .compose(Graft.split(Graft.weighted("a", 192), Graft.weighted("b", 192))), 1e-3f),
        new Row("fuse", "fuse(lora, bottleneck), both trained first",
            g -> bottleneckOut(loraOut(g, "a"), "b").compose(Graft.fuse("a", "b")), 1e-3f,
            List.of(new Pretrained("a", g -> loraOut(g, "a"), 2e-3f),
                new Pretrained("b", g -> bottleneckOut(g, "b"), 1e-3f))),
        new Row("mixture-soft", "mixture of lora soft E4 r8", g -> g.mixtureOfLora("", o -> o.experts(4)), 2e-3f),
        new Row("mixture-top2", "mixture of lora top-2 of E4 r8",
            g -> g.mixtureOfLora("", o -> o.experts(4).router("top_k").topK(2)), 2e-3f),
        new Row("mixture-per-layer", "mixture of lora top-2, experts 2,2,2,4,4,8",
            g -> g.mixtureOfLora("", o -> o.expertsPerLayer(2, 2, 2, 4, 4, 8).router("top_k").topK(2)), 2e-3f),
        new Row("mhr", "multi-head routing 4 pieces 4 heads r8", g -> g.multiHeadRouting("", o -> {}), 2e-3f));
  }

  /** A finished row. */
  record Result(String name, long params, double accuracy, double stepsPerSecond, boolean reloadIdentical,
      String extra) {}

  private AdapterBenchmark() {}

  public static void main(String[] args) {
    int epochs = 2;
    List<String> only = List.of();
    Path out = Path.of("target", "benchmark");
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
    HostModel host = SentimentData.readHost();
    List<Result> results = new ArrayList<>();
    for (Row row : rows()) {
      if (!only.isEmpty() && !only.contains(row.id())) {
        continue;
      }
      Result r = run(row, host, data, epochs, out.resolve(row.id()));
      results.add(r);
      System.out.printf(Locale.ROOT, "row: %s params=%d accuracy=%.4f steps_per_s=%.2f reload_identical=%b%s%n",
          r.name(), r.params(), r.accuracy(), r.stepsPerSecond(), r.reloadIdentical(),
          r.extra().isEmpty() ? "" : " " + r.extra());
    }
    System.out.println();
    System.out.printf(Locale.ROOT, "%d epochs, batch 16, %d train / %d held-out sentences, host %s, CPU, one run%n%n",
        epochs, data.train().size(), data.heldOut().size(), SentimentData.HOST);
    System.out.println("| kind | trainable parameters | held-out accuracy | steps/s | reload identical |");
    System.out.println("|---|---:|---:|---:|---|");
    for (Result r : results) {
      System.out.printf(Locale.ROOT, "| %s | %,d | %.4f | %.2f | %s |%n", r.name(), r.params(), r.accuracy(),
          r.stepsPerSecond(), r.reloadIdentical() ? "yes" : "NO");
    }
    for (Result r : results) {
      if (!r.extra().isEmpty()) {
        System.out.println();
        System.out.println(r.name() + ": " + r.extra());
      }
    }
    System.out.printf(Locale.ROOT, "%nwall_s=%.1f%n", (System.nanoTime() - start) / 1e9);
  }

  static Result run(Row row, HostModel host, SentimentData data, int epochs, Path saved) {
    System.err.println("== " + row.name());
    ModelOptions options = ModelOptions.defaults().withSeed(42);
    for (Pretrained p : row.pretrained()) {
      System.err.println("== " + row.name() + ": training " + p.name() + " alone first");
      CompiledGraft alone = p.declare().apply(Graft.host(host).name("BenchPretrained")).classification(2).compile();
      try (AdapterModel model = AdapterModel.open(Graft.graphs(alone), options)) {
        trainer(epochs, p.learningRate()).fit(model, data.train(), data.heldOut());
        Path dir = saved.resolveSibling(row.id() + "-pretrained-" + p.name());
        deleteQuietly(dir);
        model.saveAdapter(dir, p.name());
      }
    }
    CompiledGraft graft = row.declare().apply(Graft.host(host).name("Bench")).classification(2).compile();
    AdapterGraphs graphs = Graft.graphs(graft);
    Trainer trainer = trainer(epochs, row.learningRate());
    try (AdapterModel model = AdapterModel.open(graphs, options)) {
      for (Pretrained p : row.pretrained()) {
        model.loadAdapter(saved.resolveSibling(row.id() + "-pretrained-" + p.name()), p.name());
      }
      long params = model.getParameterCount();
      TrainingResult result = trainer.fit(model, data.train(), data.heldOut());
      deleteQuietly(saved);
      model.saveAdapter(saved);
      boolean identical;
      try (AdapterModel reloaded = AdapterModel.open(graphs, options.withSeed(43).withTraining(false))) {
        reloaded.loadAdapter(saved);
        identical = SentimentData.samePredictions(model, reloaded, data.heldOut());
      }
      String extra = "";
      if (graft.manifest().getAdaptersList().stream().anyMatch(a -> a.getKind().equals("dylora"))) {
        extra = truncatedAccuracies(graphs, options, saved, trainer, data.heldOut());
      }
      return new Result(row.name(), params, result.finalAccuracy(), result.stepsPerSecond(), identical, extra);
    }
  }

  /** The schedule every row trains with: batch 16, linear warm-up over 10% then decay to 0 from {@code learningRate}. */
  static Trainer trainer(int epochs, float learningRate) {
    return Trainer.builder().batchSize(16).epochs(epochs).learningRate(LearningRate.linear(learningRate, 0.1)).seed(1)
        .build();
  }

  /**
   * DyLoRA: the held-out accuracy of the saved adapter truncated to ranks 1, 2, 4 and 8, each
   * loaded into a fresh model and truncated there ({@link AdapterModel#truncateRank}).
   */
  static String truncatedAccuracies(AdapterGraphs graphs, ModelOptions options, Path saved, Trainer trainer,
      List<Example> heldOut) {
    StringBuilder out = new StringBuilder("truncated_accuracy");
    for (int rank : new int[] {1, 2, 4, 8}) {
      try (AdapterModel model = AdapterModel.open(graphs, options.withTraining(false))) {
        model.loadAdapter(saved);
        model.truncateRank(rank);
        out.append(String.format(Locale.ROOT, " r%d=%.4f", rank, trainer.evaluate(model, heldOut)));
      }
    }
    return out.toString();
  }

  private static void deleteQuietly(Path dir) {
    try {
      if (Files.isDirectory(dir)) {
        try (var files = Files.list(dir)) {
          for (Path f : files.toList()) {
            Files.delete(f);
          }
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException("argument " + args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
