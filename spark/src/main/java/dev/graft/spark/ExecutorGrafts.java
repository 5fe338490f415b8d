package dev.graft.spark;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.text.TextTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.stream.Stream;
import org.apache.spark.SparkConf;
import org.apache.spark.SparkEnv;
import org.apache.spark.util.LongAccumulator;
import org.jspecify.annotations.Nullable;

/**
 * The grafts open in this JVM (an executor's, or the driver's in local mode), one per {@link
 * ScoringPayload#key()}: opened by the first task that needs it, then shared by every later task
 * and partition, and by concurrent tasks (inference takes the model's read lock). They stay open
 * until the JVM exits; a scorer built again from the same graft, adapter and settings has the
 * same key and finds the open one.
 */
final class ExecutorGrafts {
  private static final ConcurrentMap<String, Open> OPEN = new ConcurrentHashMap<>();

  private ExecutorGrafts() {}

  /** An open graft, its tokenizer (for a text column) and the host inputs it is fed. */
  record Open(AdapterModel model, @Nullable TextTokenizer tokenizer, List<String> inputNames, int intraOpThreads) {}

  /** The open graft of {@code payload}, opening it (and counting that in {@code opened}) on first use. */
  static Open get(ScoringPayload payload, LongAccumulator opened) {
    return OPEN.computeIfAbsent(payload.key(), key -> {
      Open open = open(payload);
      opened.add(1);
      return open;
    });
  }

  /** Opens the graft (ONNX Runtime's native set-up runs on a large stack: {@code NativeStack} in the runtime). */
  private static Open open(ScoringPayload payload) {
    int threads = payload.intraOpThreads() > 0 ? payload.intraOpThreads() : executorCores();
    ModelOptions options = ModelOptions.defaults().withTraining(false).withIntraOpThreads(threads);
    if (payload.hostPath() != null) {
      options = options.withHost(Path.of(payload.hostPath()));
    }
    AdapterModel model = AdapterModel.open(payload.graphs(), options);
    try {
      if (payload.adapterWeights() != null) {
        loadAdapter(model, payload);
      }
      TextTokenizer tokenizer = payload.tokenizer() == null ? null
          : payload.tokenizerOnClassPath()
              ? TextTokenizer.fromClasspath(payload.tokenizer(), payload.maxTokens())
              : TextTokenizer.fromFile(Path.of(payload.tokenizer()), payload.maxTokens());
      List<String> names = model.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
      return new Open(model, tokenizer, names, threads);
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
  }

  /** Writes the broadcast adapter folder to a private temporary folder and loads it (the runtime's PEFT reader checks it). */
  private static void loadAdapter(AdapterModel model, ScoringPayload payload) {
    Path dir = null;
    try {
      dir = Files.createTempDirectory("graft-adapter-");
      Files.write(dir.resolve(PeftAdapters.CONFIG_FILE), payload.adapterConfig());
      Files.write(dir.resolve(PeftAdapters.WEIGHTS_FILE), payload.adapterWeights());
      model.loadAdapter(dir);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot write the broadcast adapter of graft '"
          + payload.graftName() + "' to a temporary folder: " + e, e);
    } finally {
      if (dir != null) {
        delete(dir);
      }
    }
  }

  private static void delete(Path dir) {
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path p : files.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      // A temporary folder left behind is harmless; the adapter is loaded.
    }
  }

  /**
   * The cores of this executor: {@code spark.executor.cores} where set (the cluster managers set
   * it, spark-submit's {@code --executor-cores}), else the JVM's processors.
   */
  static int executorCores() {
    SparkEnv env = SparkEnv.get();
    SparkConf conf = env == null ? null : env.conf();
    int cores = conf == null ? 0 : conf.getInt("spark.executor.cores", 0);
    return cores > 0 ? cores : Runtime.getRuntime().availableProcessors();
  }

  /** How many grafts this JVM holds open (tests). */
  static int openCount() {
    return OPEN.size();
  }
}
