package dev.graft.examples.spark;

import dev.graft.examples.sentiment.SentimentData;
import dev.graft.examples.sentiment.SentimentLoraGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.data.LabelledText;
import dev.graft.spark.DataParallelResult;
import dev.graft.spark.DataParallelTrainer;
import dev.graft.spark.GraftScorer;
import dev.graft.spark.ReplicaSource;
import dev.graft.spark.ScoreOutput;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
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
 * against the labels. {@code train}: the same LoRA (r8, alpha 16, query and value) trained
 * data-parallel by {@link DataParallelTrainer}, one replica per partition, gradients all-reduced each
 * step; the result saved as an adapter folder ({@code --out}) and scored on the held-out sentences as
 * {@code score} does. Each ends with one {@code result: key=value ...} line.
 *
 * <p>Commands: {@code score} (the default) and {@code train}. Arguments (all optional): {@code
 * --master URL} (default: spark-submit's, else {@code local[2]}), {@code --adapter DIR} (score: an
 * adapter folder, e.g. the one {@code SentimentExample} saves to {@code target/sentiment-lora};
 * without one the graft's initialized parameters score, near 50% accuracy), {@code --batch N} (rows
 * per batch: scoring's, default 32; training's per replica, default 8), {@code --partitions N}
 * (score: default Spark's default parallelism; train: the replicas, default 2), {@code --steps N}
 * (train, default 300), {@code --out DIR} (train: where the adapter goes, default {@code
 * target/spark-sentiment-lora}).
 *
 * <p>On a cluster: {@code spark-submit --class dev.graft.examples.spark.SparkSentiment ...
 * graft-examples-spark.jar score --adapter /shared/sentiment-lora} (docs/spark.md).
 */
public final class SparkSentiment {
  private SparkSentiment() {}

  /** The parsed arguments. */
  record Options(String command, @Nullable String master, @Nullable Path adapter, int batch, int partitions, int steps,
      Path out) {
    static Options parse(String[] args) {
      String command = "score";
      String master = null;
      Path adapter = null;
      int batch = 0;
      int partitions = 0;
      int steps = 300;
      Path out = Path.of("target/spark-sentiment-lora");
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
          case "--steps" -> steps = Integer.parseInt(value(args, ++i));
          case "--out" -> out = Path.of(value(args, ++i));
          default -> throw new IllegalArgumentException("unknown argument '" + args[i]
              + "'; expected --master URL, --adapter DIR, --batch N, --partitions N, --steps N or --out DIR");
        }
      }
      boolean train = command.equals("train");
      if (!train && !command.equals("score")) {
        throw new IllegalArgumentException("unknown command '" + command + "'; expected score or train");
      }
      if (batch == 0) {
        batch = train ? 8 : GraftScorer.DEFAULT_BATCH_SIZE;
      }
      if (train && partitions == 0) {
        partitions = 2;
      }
      return new Options(command, master, adapter, batch, partitions, steps, out);
    }
  }

  public static void main(String[] args) {
    Options options = Options.parse(args);
    long start = System.nanoTime();
    SparkSession spark = session("graft-sentiment", options.master());
    try {
      if (options.command().equals("train")) {
        train(spark, options);
      } else {
        score(spark, options);
      }
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

  /**
   * Compiles the sentiment LoRA with the gradient and apply graphs, trains it on the training
   * sentences in {@code options.partitions()} replicas, saves the adapter and scores it.
   */
  static void train(SparkSession spark, Options options) {
    try {
      Path work = Files.createTempDirectory("graft-spark-sentiment");
      Path host = work.resolve(SentimentData.HOST);
      Files.write(host, SentimentData.readHost().model().toByteArray());
      Graft.host(host).name("SentimentLoraDp")
          .lora(".*/attention/self/(query|value)/MatMul", l -> l.rank(8).alpha(16))
          .classification(2).compile(GraphVariant.GRADIENT).writeTo(work.resolve("graft"));
      ReplicaSource source = ReplicaSource.directory(work.resolve("graft"), "SentimentLoraDp").withHost(host);
      int length = SentimentData.MAX_TOKENS;
      List<long[]> rows = SparkTrainingBenchmark.rows(SentimentData.load().train(), length);
      JavaRDD<long[]> data = JavaSparkContext.fromSparkContext(spark.sparkContext())
          .parallelize(rows, options.partitions());
      DataParallelTrainer trainer = DataParallelTrainer.builder(source, work.resolve("checkpoints"))
          .batchSize(options.batch()).steps(options.steps()).checkpointEvery(Math.max(1, options.steps() / 4))
          .learningRate(1e-3f).build();
      long start = System.nanoTime();
      DataParallelResult result = trainer.fit(data, row -> SparkTrainingBenchmark.example(row, length));
      double seconds = (System.nanoTime() - start) / 1e9;
      float[] losses = result.losses();
      try (AdapterModel model = source.open()) {
        model.setParameterVector(result.parameters());
        model.saveAdapter(options.out());
      }
      System.err.printf(Locale.ROOT, "train: %d replicas x batch %d, %d steps in %.1f s, loss %.4f -> %.4f,"
          + " all-reduce %.1f%% of replica 0's step time; adapter saved to %s%n", result.replicas(), options.batch(),
          losses.length, seconds, losses[0], mean(losses, losses.length - 10), 100 * result.allReduceShare(),
          options.out());
      score(spark, new Options("score", options.master(), options.out(), GraftScorer.DEFAULT_BATCH_SIZE, 0,
          options.steps(), options.out()), source.graphs(), host);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The mean of {@code values} from {@code from} (at least 0) to the end. */
  private static double mean(float[] values, int from) {
    double sum = 0;
    int n = 0;
    for (int i = Math.max(0, from); i < values.length; i++) {
      sum += values[i];
      n++;
    }
    return sum / n;
  }

  static void score(SparkSession spark, Options options) {
    score(spark, options, graphs(), null);
  }

  /** Scores the held-out sentences with {@code graphs} (its host from the class path, or {@code host}). */
  static void score(SparkSession spark, Options options, AdapterGraphs graphs, @Nullable Path host) {
    List<LabelledText> heldOut = SentimentData.texts().heldOut();
    GraftScorer.Builder builder = GraftScorer.builder(graphs)
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
    if (host != null) {
      builder.host(host.toString());
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
