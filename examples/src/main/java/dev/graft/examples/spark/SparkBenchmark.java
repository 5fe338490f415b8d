package dev.graft.examples.spark;

import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.data.LabelledText;
import dev.graft.runtime.text.TextTokenizer;
import dev.graft.spark.GraftScorer;
import dev.graft.spark.ScoreOutput;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * Scoring throughput per core on Spark against a bare single-process loop, one run: the same
 * sentences (the sentiment example's, {@code --rows} of them), the same graft (SentimentLora on
 * all-MiniLM-L6-v2, its initialized parameters), the same batch size and tokenizer.
 *
 * <ul>
 *   <li>bare loop: this JVM, one thread: tokenize a batch, pad it, {@code AdapterModel.predict},
 *       ONNX Runtime on one intra-op thread;
 *   <li>Spark {@code local[C]}: the sentences as a DataFrame of C partitions, scored by {@link
 *       GraftScorer} with one ONNX Runtime thread per task (C concurrent tasks share the JVM's one
 *       open graft), counted; the graft is opened by a warm-up job before timing.
 * </ul>
 *
 * <p>Rows/s per core = rows / seconds / cores. Rounds alternate the loop and Spark (so that a
 * change of load falls on both); the table reports medians and Spark's ratio to the loop. Every
 * timed Spark job is checked to have scored every row once (the scorer's row count).
 *
 * <p>Arguments (all optional): {@code --rows N} (default 640), {@code --batch N} (default 32),
 * {@code --rounds N} (default 3), {@code --cores LIST} (Spark local cores, default {@code 1,2}).
 * Ends with one {@code result: key=value ...} line.
 */
public final class SparkBenchmark {
  private SparkBenchmark() {}

  public static void main(String[] args) {
    int rows = 640;
    int batch = 32;
    int rounds = 3;
    int[] cores = {1, 2};
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--rows" -> rows = Integer.parseInt(args[++i]);
        case "--batch" -> batch = Integer.parseInt(args[++i]);
        case "--rounds" -> rounds = Integer.parseInt(args[++i]);
        case "--cores" -> cores = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
        default -> throw new IllegalArgumentException("unknown argument '" + args[i]
            + "'; expected --rows N, --batch N, --rounds N or --cores LIST");
      }
    }
    List<LabelledText> all = new ArrayList<>(SentimentData.texts().train());
    all.addAll(SentimentData.texts().heldOut());
    List<LabelledText> texts = new ArrayList<>();
    for (int i = 0; i < rows; i++) {
      texts.add(all.get(i % all.size()));
    }
    System.err.printf(Locale.ROOT, "spark-benchmark: %d rows, batch %d, %d rounds, Spark cores %s, %d processors%n",
        rows, batch, rounds, Arrays.toString(cores), Runtime.getRuntime().availableProcessors());

    StringBuilder table = new StringBuilder(
        "| run | cores | rows/s | rows/s per core | per core vs bare loop |\n|---|---|---|---|---|\n");
    StringBuilder result = new StringBuilder("result:");
    try (AdapterModel model = AdapterModel.open(SparkSentiment.graphs(),
        ModelOptions.defaults().withTraining(false).withIntraOpThreads(1));
        TextTokenizer tokenizer = TextTokenizer.fromClasspath(SentimentData.TOKENIZER, SentimentData.MAX_TOKENS)) {
      bareLoop(model, tokenizer, texts, batch);
      List<Double> bare = new ArrayList<>();
      for (int c : cores) {
        List<Double> loop = new ArrayList<>();
        List<Double> spark = new ArrayList<>();
        SparkSession session = SparkSentiment.session("graft-spark-benchmark", "local[" + c + "]");
        try (GraftScorer scorer = GraftScorer.builder(SparkSentiment.graphs())
                .textColumn("text", SentimentData.TOKENIZER, SentimentData.MAX_TOKENS)
                .output(ScoreOutput.PREDICTION).batchSize(batch).intraOpThreads(1).build(session)) {
          Dataset<Row> frame = SparkSentiment.sentences(session, texts, c).cache();
          frame.count();
          scorer.score(SparkSentiment.sentences(session, texts.subList(0, batch * c), c)).count();
          for (int r = 0; r < rounds; r++) {
            loop.add(rows / bareLoop(model, tokenizer, texts, batch));
            long before = scorer.rowsScored();
            long t0 = System.nanoTime();
            long counted = scorer.score(frame).count();
            double s = (System.nanoTime() - t0) / 1e9;
            if (counted != rows || scorer.rowsScored() - before != rows) {
              throw new IllegalStateException("the timed job scored " + (scorer.rowsScored() - before) + " rows and counted "
                  + counted + "; expected " + rows);
            }
            spark.add(rows / s / c);
            System.err.printf(Locale.ROOT, "round %d, local[%d]: bare loop %.1f rows/s, Spark %.1f rows/s per core%n",
                r + 1, c, loop.get(loop.size() - 1), spark.get(spark.size() - 1));
          }
          frame.unpersist();
          System.err.printf(Locale.ROOT, "local[%d]: %d grafts opened, %d partitions scored%n", c, scorer.graftsOpened(),
              scorer.partitionsScored());
        } finally {
          session.stop();
        }
        double loopMedian = median(loop);
        double sparkMedian = median(spark);
        bare.addAll(loop);
        table.append(String.format(Locale.ROOT, "| bare loop (rounds beside local[%d]) | 1 | %.1f | %.1f | 1.00 |%n",
            c, loopMedian, loopMedian));
        table.append(String.format(Locale.ROOT, "| Spark local[%d], GraftScorer | %d | %.1f | %.1f | %.2f |%n",
            c, c, sparkMedian * c, sparkMedian, sparkMedian / loopMedian));
        result.append(String.format(Locale.ROOT, " local%d_per_core_ratio=%.3f", c, sparkMedian / loopMedian));
      }
      result.append(String.format(Locale.ROOT, " bare_rows_per_s=%.1f rows=%d batch=%d", median(bare), rows, batch));
    }
    System.out.print(table);
    System.out.println(result);
  }

  /** Seconds for one pass of the bare loop over {@code texts}. */
  static double bareLoop(AdapterModel model, TextTokenizer tokenizer, List<LabelledText> texts, int batch) {
    List<String> names = model.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    long t0 = System.nanoTime();
    long checksum = 0;
    for (int b = 0; b < texts.size(); b += batch) {
      List<Example> examples = new ArrayList<>(batch);
      for (LabelledText t : texts.subList(b, Math.min(texts.size(), b + batch))) {
        examples.add(Example.unlabelled(tokenizer.encode(t.text())));
      }
      float[][] logits = model.predict(Batch.of(examples, names).inputs());
      checksum += logits.length;
    }
    if (checksum != texts.size()) {
      throw new IllegalStateException("the loop scored " + checksum + " rows of " + texts.size());
    }
    return (System.nanoTime() - t0) / 1e9;
  }

  static double median(List<Double> values) {
    double[] v = values.stream().mapToDouble(Double::doubleValue).sorted().toArray();
    return v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  }
}
