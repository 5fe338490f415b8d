package dev.graft.examples.spark;

import dev.graft.compiler.GraphVariant;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.data.Example;
import dev.graft.spark.DataParallelResult;
import dev.graft.spark.DataParallelTrainer;
import dev.graft.spark.ReplicaSource;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * Data-parallel training figures from one run: all-MiniLM-L6-v2 with LoRA r8 on query and value and
 * a 2-class head, synchronous data-parallel training on a {@code local-cluster[2,1,2048]} (two
 * executor JVMs on this machine) with 1 and then 2 replicas, the same batch per replica: training
 * examples/s, the all-reduce's share of replica 0's step time, the bytes per all-reduce, and the
 * extrapolation to N replicas from those message sizes.
 *
 * <p>{@code ./mvnw -o -q -pl examples -am package -DskipTests && ./mvnw -o -q -pl examples
 * exec:exec@spark-training-benchmark} (the exec starts a JVM with the options Spark needs on Java 17).
 * Arguments: {@code --batch N} (per replica, 8), {@code --steps N} (6), {@code --length N} (32).
 */
public final class SparkTrainingBenchmark {
  private SparkTrainingBenchmark() {}

  public static void main(String[] args) throws Exception {
    int batch = 8;
    int steps = 6;
    int length = 32;
    for (int i = 0; i + 1 < args.length; i += 2) {
      int v = Integer.parseInt(args[i + 1]);
      switch (args[i]) {
        case "--batch" -> batch = v;
        case "--steps" -> steps = v;
        case "--length" -> length = v;
        default -> throw new IllegalArgumentException("unknown option " + args[i] + "; expected --batch, --steps, --length");
      }
    }
    Path work = Files.createTempDirectory("graft-spark-training-benchmark");
    Path host = work.resolve(SentimentData.HOST);
    Files.write(host, SentimentData.readHost().model().toByteArray());
    long compileStart = System.nanoTime();
    var graft = Graft.host(host).name("DpMiniLm").lora(".*attention/self/(query|value)/MatMul", l -> l.rank(8))
        .classification(2).compile(GraphVariant.GRADIENT);
    double compileSeconds = (System.nanoTime() - compileStart) / 1e9;
    graft.writeTo(work.resolve("graft"));
    long gradientBytes = Files.size(work.resolve("graft/DpMiniLm.gradient.onnx"));
    long applyBytes = Files.size(work.resolve("graft/DpMiniLm.apply.onnx"));
    long trainBytes = Files.size(work.resolve("graft/DpMiniLm.train.onnx"));
    List<long[]> rows = rows(SentimentData.load().train(), length);
    SparkSession spark = cluster(work);
    try {
      JavaSparkContext context = JavaSparkContext.fromSparkContext(spark.sparkContext());
      ReplicaSource source = ReplicaSource.directory(work.resolve("graft"), "DpMiniLm").withHost(host)
          .withIntraOpThreads(1);
      List<String> lines = new ArrayList<>();
      double[] perSecond = new double[3];
      DataParallelResult two = null;
      DataParallelResult one = null;
      for (int replicas : new int[] {1, 2}) {
        JavaRDD<long[]> data = context.parallelize(rows.subList(0, 256 * replicas), replicas);
        DataParallelTrainer trainer = DataParallelTrainer.builder(source, work.resolve("checkpoints-" + replicas))
            .batchSize(batch).steps(steps).checkpointEvery(steps).learningRate(2e-4f).timeoutMs(600_000).build();
        final int len = length;
        long t0 = System.nanoTime();
        DataParallelResult r = trainer.fit(data, row -> example(row, len));
        double wall = (System.nanoTime() - t0) / 1e9;
        double stepSeconds = (r.computeNanos() + r.reduceNanos()) / 1e9;
        perSecond[replicas] = (double) replicas * batch * steps / stepSeconds;
        lines.add(String.format(Locale.ROOT, "| %d | %d | %.2f | %.1f | %.2f%% | %d | %.1f |", replicas,
            replicas * batch, stepSeconds / steps, perSecond[replicas], 100 * r.allReduceShare(),
            r.reduces() == 0 ? 0 : r.bytesSent() / r.reduces(), wall));
        if (replicas == 2) {
          two = r;
        } else {
          one = r;
        }
      }
      long trained = two.parameters().length;
      System.out.printf(Locale.ROOT, "graft: %d trained values; compile with GRADIENT and APPLY %.1f s; resources:"
          + " train %d B, gradient %d B, apply %d B%n", trained, compileSeconds, trainBytes, gradientBytes, applyBytes);
      System.out.println("| replicas | global batch | s / step (replica 0) | examples/s | all-reduce share |"
          + " bytes sent / all-reduce (replica 0) | wall s (incl. open) |");
      System.out.println("|---:|---:|---:|---:|---:|---:|---:|");
      lines.forEach(System.out::println);
      System.out.printf(Locale.ROOT, "2 replicas / 1 replica examples/s: %.2f%n", perSecond[2] / perSecond[1]);
      double payload = 4.0 * (trained + 2);
      double reduceSeconds = two.reduceNanos() / 1e9 / two.reduces();
      // Compute per step from the 1-replica run: on a cluster each executor has cores of its own
      // (here the two executors share this machine's cores).
      double computeSeconds = one.computeNanos() / 1e9 / steps;
      System.out.printf(Locale.ROOT, "extrapolation: payload %.0f B; per replica per step 2(N-1)/N x payload in"
          + " 2(N-1) frame exchanges; measured all-reduce %.4f s at N=2 (%.0f B sent), compute %.3f s per step"
          + " (1 replica); assumed 1 Gbit/s and, per frame exchange, the whole measured N=2 time / 2 (loopback"
          + " transfer and waiting for the slower replica included: an upper estimate)%n",
          payload, reduceSeconds, (double) two.bytesSent() / two.reduces(), computeSeconds);
      for (int n : new int[] {2, 4, 8, 16, 64}) {
        double bytes = 2.0 * (n - 1) / n * payload;
        // Bandwidth part at 1 Gbit/s, latency part 2(N-1) frames at the per-frame time measured at N=2.
        double seconds = bytes / 125e6 + 2 * (n - 1) * (reduceSeconds / 2);
        System.out.printf(Locale.ROOT, "  N=%d: %.0f B per replica per step, all-reduce about %.4f s (%.1f%% of step)"
            + ", examples/s about %.0f%n", n, bytes, seconds, 100 * seconds / (seconds + computeSeconds),
            n * batch / (seconds + computeSeconds));
      }
    } finally {
      spark.stop();
    }
  }

  /** Each example's {@code input_ids}, cut or padded to {@code length}, then its label: what {@link #example} reads. */
  static List<long[]> rows(List<Example> train, int length) {
    List<long[]> out = new ArrayList<>();
    for (Example e : train) {
      long[] ids = Arrays.copyOf(e.features().get("input_ids"), length);
      long[] row = Arrays.copyOf(ids, length + 1);
      row[length] = e.label();
      out.add(row);
    }
    return out;
  }

  static Example example(long[] row, int length) {
    Map<String, long[]> f = new LinkedHashMap<>();
    long[] ids = Arrays.copyOf(row, length);
    long[] mask = new long[length];
    for (int t = 0; t < length; t++) {
      mask[t] = ids[t] != 0 ? 1 : 0;
    }
    f.put("input_ids", ids);
    f.put("attention_mask", mask);
    f.put("token_type_ids", new long[length]);
    return new Example(f, row[length]);
  }

  /**
   * A {@code local-cluster[2,1,2048]} whose executors get this JVM's class path through one
   * manifest-only jar, so their command lines stay short (a long one brings ONNX Runtime's native
   * code closer to a thread's stack limit, docs/spark.md "Stack").
   */
  private static SparkSession cluster(Path work) throws Exception {
    Path home = work.resolve("spark-home");
    Files.createDirectories(home.resolve("jars"));
    Files.createDirectories(home.resolve("launcher/target/scala-2.13"));
    Manifest manifest = new Manifest();
    manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
    StringBuilder urls = new StringBuilder();
    for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
      if (!entry.isBlank()) {
        urls.append(urls.length() == 0 ? "" : " ").append(Path.of(entry).toAbsolutePath().toUri());
      }
    }
    manifest.getMainAttributes().put(Attributes.Name.CLASS_PATH, urls.toString());
    Path jar = home.resolve("executor-classpath.jar");
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), manifest)) {
      out.flush();
    }
    System.setProperty("spark.testing", "true");
    System.setProperty("spark.test.home", home.toString());
    String own = System.getProperty("java.class.path");
    System.setProperty("java.class.path", jar.toString());
    SparkSession spark;
    try {
      spark = SparkSession.builder().appName("graft-spark-training-benchmark").master("local-cluster[2,1,2048]")
          .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
          .config("spark.executor.memory", "2048m").config("spark.executor.extraClassPath", jar.toString())
          .config("spark.executorEnv.SPARK_SCALA_VERSION", "2.13").config("spark.ui.enabled", "false")
          .getOrCreate();
    } finally {
      System.setProperty("java.class.path", own);
    }
    long deadline = System.nanoTime() + 300_000_000_000L;
    while (spark.sparkContext().statusTracker().getExecutorInfos().length < 3 && System.nanoTime() < deadline) {
      Thread.sleep(200);
    }
    return spark;
  }
}
