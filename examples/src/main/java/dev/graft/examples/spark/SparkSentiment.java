package dev.graft.examples.spark;

import dev.graft.examples.sentiment.SentimentData;
import dev.graft.examples.sentiment.SentimentLoraGraft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.data.LabelledText;
import dev.graft.spark.GraftScorer;
import dev.graft.spark.ScoreOutput;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.jspecify.annotations.Nullable;

/**
 * The sentiment task on Spark. {@code score}: the held-out sentences of the sentiment example as a
 * DataFrame of text, scored by the {@link dev.graft.examples.sentiment.SentimentLora} graft (the
 * host all-MiniLM-L6-v2 from the class path, the adapter folder broadcast), with the accuracy
 * against the labels. Ends with one {@code result: key=value ...} line.
 *
 * <p>Commands: {@code score} (the default). Arguments (all optional): {@code --master URL}
 * (default: spark-submit's, else {@code local[2]}), {@code --adapter DIR} (an adapter folder, e.g.
 * the one {@code SentimentExample} saves to {@code target/sentiment-lora}; without one the graft's
 * initialized parameters score, near 50% accuracy), {@code --batch N} (rows per batch, default 32),
 * {@code --partitions N} (default: Spark's default parallelism).
 *
 * <p>On a cluster: {@code spark-submit --class dev.graft.examples.spark.SparkSentiment ...
 * graft-examples-spark.jar score --adapter /shared/sentiment-lora} (docs/spark.md).
 */
public final class SparkSentiment {
  private SparkSentiment() {}

  /** The parsed arguments. */
  record Options(String command, @Nullable String master, @Nullable Path adapter, int batch, int partitions) {
    static Options parse(String[] args) {
      String command = "score";
      String master = null;
      Path adapter = null;
      int batch = GraftScorer.DEFAULT_BATCH_SIZE;
      int partitions = 0;
      int i = 0;
      if (args.length > 0 && !args[0].startsWith("--")) {
        command = args[i++];
      }
      for (; i < args.length; i++) {
        switch (args[i]) {
          case "--master" -> master = value(args, ++i);
          case "--adapter" -> adapter = Path.of(value(args, ++i));
          case "--batch" -> batch = Integer.parseInt(value(args, ++i));
          case "--partitions" -> partitions = Integer.parseInt(value(args, ++i));
          default -> throw new IllegalArgumentException("unknown argument '" + args[i]
              + "'; expected --master URL, --adapter DIR, --batch N or --partitions N");
        }
      }
      if (!command.equals("score")) {
        throw new IllegalArgumentException("unknown command '" + command + "'; expected score");
      }
      return new Options(command, master, adapter, batch, partitions);
    }
  }

  public static void main(String[] args) {
    Options options = Options.parse(args);
    long start = System.nanoTime();
    SparkSession spark = session("graft-sentiment", options.master());
    try {
      score(spark, options);
    } finally {
      spark.stop();
    }
    System.err.printf(Locale.ROOT, "wall: %.1f s%n", (System.nanoTime() - start) / 1e9);
  }

  /** A session on {@code master}, or on spark-submit's master, else on {@code local[2]}. */
  static SparkSession session(String name, @Nullable String master) {
    SparkSession.Builder b = SparkSession.builder().appName(name).config("spark.ui.enabled", "false");
    if (master != null) {
      b.master(master);
    } else if (System.getProperty("spark.master") == null) {
      b.master("local[2]");
    }
    return b.getOrCreate();
  }

  /** The sentiment graft's graphs, from the class path (the application jar). */
  static AdapterGraphs graphs() {
    return AdapterGraphs.fromClasspath(SentimentLoraGraft.class, "SentimentLora");
  }

  /** Sentences as a DataFrame of {@code text} and {@code label}. */
  static Dataset<Row> sentences(SparkSession spark, List<LabelledText> texts, int partitions) {
    List<Row> rows = new ArrayList<>(texts.size());
    for (LabelledText t : texts) {
      rows.add(RowFactory.create(t.text(), t.label()));
    }
    StructType schema = new StructType().add("text", DataTypes.StringType, false).add("label", DataTypes.IntegerType, false);
    Dataset<Row> frame = spark.createDataFrame(rows, schema);
    return partitions > 0 ? frame.repartition(partitions) : frame;
  }

  static void score(SparkSession spark, Options options) {
    List<LabelledText> heldOut = SentimentData.texts().heldOut();
    GraftScorer.Builder builder = GraftScorer.builder(graphs())
        .textColumn("text", SentimentData.TOKENIZER, SentimentData.MAX_TOKENS)
        .output(ScoreOutput.PREDICTION).output(ScoreOutput.PROBABILITIES)
        .batchSize(options.batch());
    if (options.adapter() != null) {
      if (!Files.isDirectory(options.adapter())) {
        throw new IllegalArgumentException("--adapter " + options.adapter() + " is not a folder; run SentimentExample"
            + " (./mvnw -pl examples exec:java) to train and save one");
      }
      builder.adapter(options.adapter());
    } else {
      System.err.println("score: no --adapter; the graft's initialized parameters score (near 50% accuracy)");
    }
    try (GraftScorer scorer = builder.build(spark)) {
      Dataset<Row> scored = scorer.score(sentences(spark, heldOut, options.partitions())).cache();
      long rows = scored.count();
      long correct = scored.filter(functions.col("prediction").equalTo(functions.col("label"))).count();
      scored.show(5, 60);
      System.out.printf(Locale.ROOT,
          "result: rows=%d accuracy=%.4f partitions=%d grafts_opened=%d batch=%d adapter=%s%n",
          rows, (double) correct / rows, scorer.partitionsScored(), scorer.graftsOpened(), options.batch(),
          options.adapter() == null ? "none" : options.adapter());
      scored.unpersist();
    }
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException("argument " + args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
