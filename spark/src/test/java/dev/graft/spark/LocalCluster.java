package dev.graft.spark;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.apache.spark.SparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * A Spark {@code local-cluster[2,1,1024]} for tests: a master and two workers inside the test JVM,
 * each worker launching its executor as a separate JVM, so code runs the way it does on a real
 * cluster (closures and broadcasts serialized, one JVM-wide cache per executor, no state shared with
 * the driver).
 *
 * <p>What makes it work offline, without a Spark distribution:
 *
 * <ul>
 *   <li>a generated Spark home ({@code target/spark-home}: an empty {@code jars/}, a {@code
 *       launcher/target/scala-2.13} marker the launcher looks for), named by the system properties
 *       {@code spark.testing} and {@code spark.test.home} that Spark's {@code Worker} reads;
 *   <li>the test class path (Surefire's {@code surefire.test.class.path}, else {@code
 *       java.class.path}) as {@code spark.executor.extraClassPath}, so executors load Spark, Graft
 *       and the test classes from the same jars and folders as the driver;
 *   <li>{@code spark.driver.host=127.0.0.1}, {@code spark.executor.cores=1} (what code on an
 *       executor reads as its cores, as a cluster manager sets it), one shuffle partition per
 *       executor core.
 * </ul>
 *
 * <p>Starting the executors costs several seconds on two cores, so the session is shared by every
 * test class in a Surefire fork ({@link #session()}) and stopped when the JVM exits; Spark allows one
 * {@code SparkContext} per JVM. Tests must not stop it. Executor logs lie in the workers' temporary
 * folders ({@code java.io.tmpdir/worker-*}/{@code app-*}/{@code <id>}/{@code stderr}) while the
 * cluster runs and go with it; an executor JVM's crash report is kept as {@code
 * target/spark-home/hs_err_executor_<pid>.log}.
 */
public final class LocalCluster {
  /** Executor JVMs of the shared cluster. */
  public static final int EXECUTORS = 2;

  /** Cores per executor. */
  public static final int CORES_PER_EXECUTOR = 1;

  /** Memory per executor (and worker), MiB. */
  public static final int EXECUTOR_MEMORY_MIB = 1024;

  private static final long REGISTRATION_TIMEOUT_MS = 120_000;

  private static SparkSession session;

  private LocalCluster() {}

  /**
   * The shared session on {@code local-cluster[2,1,1024]}, started on first use; returns once every
   * executor has registered, so the first job's tasks spread over both executors.
   */
  public static synchronized SparkSession session() {
    if (session == null || session.sparkContext().isStopped()) {
      session = start();
      SparkSession started = session;
      Runtime.getRuntime().addShutdownHook(new Thread(started::stop, "local-cluster-stop"));
    }
    return session;
  }

  /** The test class path, as the executors get it. */
  public static String testClassPath() {
    String surefire = System.getProperty("surefire.test.class.path");
    String path = surefire != null && !surefire.isBlank() ? surefire : System.getProperty("java.class.path");
    boolean hasSpark =
        Arrays.stream(path.split(File.pathSeparator)).anyMatch(entry -> entry.contains("spark-core_"));
    if (!hasSpark) {
      throw new IllegalStateException(
          "the test class path has no spark-core jar; executors could not start. Class path: " + path);
    }
    return path;
  }

  private static SparkSession start() {
    Path home = sparkHome();
    System.setProperty("spark.testing", "true");
    System.setProperty("spark.test.home", home.toString());
    String master = "local-cluster[" + EXECUTORS + "," + CORES_PER_EXECUTOR + "," + EXECUTOR_MEMORY_MIB + "]";
    SparkSession started =
        SparkSession.builder()
            .appName("graft-spark-tests")
            .master(master)
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.executor.memory", EXECUTOR_MEMORY_MIB + "m")
            // As a cluster manager sets it: what code on an executor reads as its core count.
            .config("spark.executor.cores", String.valueOf(CORES_PER_EXECUTOR))
            .config("spark.executor.extraClassPath", testClassPath())
            .config("spark.executorEnv.SPARK_SCALA_VERSION", "2.13")
            // Workers' folders (executor stdout/stderr) are temporary and go with the cluster: a
            // crashed executor's JVM report stays in target/spark-home.
            .config("spark.executor.extraJavaOptions", "-XX:ErrorFile=" + home.resolve("hs_err_executor_%p.log"))
            .config("spark.sql.shuffle.partitions", String.valueOf(EXECUTORS * CORES_PER_EXECUTOR))
            .config("spark.ui.enabled", "false")
            .config("spark.sql.ui.enabled", "false")
            .config("spark.worker.ui.enabled", "false")
            .getOrCreate();
    awaitExecutors(started.sparkContext());
    return started;
  }

  private static void awaitExecutors(SparkContext context) {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(REGISTRATION_TIMEOUT_MS);
    // getExecutorInfos lists the driver too.
    while (context.statusTracker().getExecutorInfos().length < EXECUTORS + 1) {
      if (System.nanoTime() > deadline) {
        int registered = context.statusTracker().getExecutorInfos().length - 1;
        context.stop();
        throw new IllegalStateException(
            registered + " of " + EXECUTORS + " executors registered within " + REGISTRATION_TIMEOUT_MS
                + " ms; see the executor logs under " + System.getProperty("java.io.tmpdir") + "/worker-*");
      }
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted while waiting for executors", e);
      }
    }
  }

  private static Path sparkHome() {
    Path home = Path.of("target", "spark-home").toAbsolutePath();
    try {
      Files.createDirectories(home.resolve("jars"));
      Files.createDirectories(home.resolve("launcher/target/scala-2.13"));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create the test Spark home " + home, e);
    }
    return home;
  }
}
