package dev.graft.examples.benchmark;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.serve.AdapterServer;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Serving throughput and latency on the real all-MiniLM-L6-v2 host, one run: the same batch
 * (held-out sentences of the sentiment example, cut or padded to one length) through the bare
 * host in a plain ONNX Runtime session, through one LoRA merged into the host ({@code
 * AdapterModel.exportMerged}, run in a plain session), through one unmerged LoRA (the graft's
 * inference graph, {@code AdapterModel.predict}), and through the {@link AdapterServer}'s gathered graph with the
 * batch's rows spread over 1, 4, 16, 64 and 256 distinct registered adapters (LoRA r8 on query and
 * value plus each adapter's own 2-class head, random non-zero values).
 *
 * <p>Per configuration: warm-up runs, then timed runs of one batch each, in rounds over every
 * configuration (so that a change of load falls on all alike); rows/s from the median, p50 and p99
 * latency of a batch (nearest rank; with few runs p99 is the slowest run). Prints a
 * Markdown table with each row's time relative to the bare host and each mixed row's throughput
 * relative to the one-adapter mixed row.
 *
 * <p>Arguments (all optional): {@code --batch N} (rows per batch, default 256; at least the
 * largest adapter count), {@code --length N} (tokens per row, default 32), {@code --runs N}
 * (timed runs per row, default 6), {@code --warmup N} (default 1), {@code --threads N} (ONNX
 * Runtime intra-op threads; default its own).
 */
public final class ServingBenchmark {
  private static final int[] MIXES = {1, 4, 16, 64, 256};

  private ServingBenchmark() {}

  /** A measured row: its name, the batch's timed runs in seconds. */
  record Row(String name, double[] seconds) {
    double quantile(double q) {
      double[] s = seconds.clone();
      Arrays.sort(s);
      return s[Math.min(s.length - 1, (int) Math.ceil(q * s.length) - 1)];
    }
  }

  interface Run {
    void once() throws Exception;
  }

  public static void main(String[] args) throws Exception {
    int batchSize = 256;
    int length = 32;
    int runs = 6;
    int warmup = 1;
    int threads = 0;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--batch" -> batchSize = Integer.parseInt(value(args, ++i));
        case "--length" -> length = Integer.parseInt(value(args, ++i));
        case "--runs" -> runs = Integer.parseInt(value(args, ++i));
        case "--warmup" -> warmup = Integer.parseInt(value(args, ++i));
        case "--threads" -> threads = Integer.parseInt(value(args, ++i));
        default -> throw new IllegalArgumentException("unknown argument '" + args[i]
            + "'; expected --batch N, --length N, --runs N, --warmup N or --threads N");
      }
    }
    if (batchSize < MIXES[MIXES.length - 1] || runs < 1 || length < 2) {
      throw new IllegalArgumentException("--batch must be at least " + MIXES[MIXES.length - 1]
          + ", --runs at least 1, --length at least 2");
    }
    long start = System.nanoTime();
    HostModel host = SentimentData.readHost();
    Map<String, long[][]> batch = batch(SentimentData.load().heldOut(), batchSize, length);
    ModelOptions options = ModelOptions.defaults().withTraining(false).withIntraOpThreads(threads);
    CompiledGraft graft = Graft.host(host).name("Served").lora("").classification(2).compile(GraphVariant.GATHERED);
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> feeds = new HashMap<>();
    OrtSession exported = null;
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      if (threads > 0) {
        so.setIntraOpNumThreads(threads);
      }
      try (OrtSession bare = env.createSession(host.model().toByteArray(), so);
          AdapterModel model = AdapterModel.open(Graft.graphs(graft), options);
          AdapterServer server = AdapterServer.open(Graft.graphs(graft), options)) {
        for (var e : batch.entrySet()) {
          feeds.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
        }
        random(model.getParameters(), 1).forEach(model::setParameter);
        Path merged = Files.createTempDirectory("graft-serving-benchmark");
        model.exportMerged(merged.resolve("export"), ExportOptions.defaults());
        exported = env.createSession(merged.resolve("export").resolve(ExportOptions.defaults().modelFile()).toString(), so);
        OrtSession mergedSession = exported;
        long registering = System.nanoTime();
        int adapters = MIXES[MIXES.length - 1];
        List<Parameter> parameters = graft.manifest().getParametersList();
        for (int a = 0; a < adapters; a++) {
          server.register("a" + a, random(parameters, 100 + a));
        }
        System.err.printf(Locale.ROOT, "registered %d adapters in %.1f s (capacity %d, ranks %s)%n", adapters,
            (System.nanoTime() - registering) / 1e9, server.capacity(), new java.util.TreeSet<>(server.ranks().values()));
        Map<String, Run> configurations = new LinkedHashMap<>();
        configurations.put("base host (bare ORT)", () -> {
          try (OrtSession.Result r = bare.run(feeds)) {
            r.get(0);
          }
        });
        configurations.put("one LoRA r8, merged export (bare ORT)", () -> {
          try (OrtSession.Result r = mergedSession.run(feeds)) {
            r.get(0);
          }
        });
        configurations.put("one LoRA r8, unmerged (inference graph)", () -> model.predict(batch));
        for (int mix : MIXES) {
          List<AdapterServer.Request> requests = mixed(batch, batchSize, mix);
          configurations.put("gathered, " + mix + " adapter" + (mix == 1 ? "" : "s") + " in the batch",
              () -> server.predict(requests));
        }
        List<Row> rows = measure(configurations, warmup, runs);
        print(rows, batchSize, length, runs, (System.nanoTime() - start) / 1e9);
      } finally {
        feeds.values().forEach(OnnxTensor::close);
        if (exported != null) {
          exported.close();
        }
      }
    }
  }

  /**
   * Times every configuration {@code runs} times, in rounds (each round runs each configuration
   * once, in order), so that a change of the machine's load in the middle of the run falls on
   * every configuration alike.
   */
  private static List<Row> measure(Map<String, Run> configurations, int warmup, int runs) throws Exception {
    for (Run r : configurations.values()) {
      for (int i = 0; i < warmup; i++) {
        r.once();
      }
    }
    Map<String, double[]> seconds = new LinkedHashMap<>();
    configurations.keySet().forEach(k -> seconds.put(k, new double[runs]));
    for (int i = 0; i < runs; i++) {
      for (var e : configurations.entrySet()) {
        long t = System.nanoTime();
        e.getValue().once();
        seconds.get(e.getKey())[i] = (System.nanoTime() - t) / 1e9;
      }
      System.err.printf(Locale.ROOT, "round %d of %d done%n", i + 1, runs);
    }
    List<Row> rows = new ArrayList<>();
    seconds.forEach((k, v) -> rows.add(new Row(k, v)));
    return rows;
  }

  /** The batch's rows spread over {@code mix} adapters, as {@code mix} requests of equal size. */
  private static List<AdapterServer.Request> mixed(Map<String, long[][]> batch, int rows, int mix) {
    List<AdapterServer.Request> out = new ArrayList<>();
    int per = rows / mix;
    for (int a = 0; a < mix; a++) {
      int from = a * per;
      int to = a == mix - 1 ? rows : from + per;
      Map<String, long[][]> part = new LinkedHashMap<>();
      for (var e : batch.entrySet()) {
        part.put(e.getKey(), Arrays.copyOfRange(e.getValue(), from, to));
      }
      out.add(new AdapterServer.Request("a" + a, part));
    }
    return out;
  }

  /** {@code rows} examples (held-out sentences, repeated if needed), each cut or padded to {@code length}. */
  private static Map<String, long[][]> batch(List<Example> examples, int rows, int length) {
    Map<String, long[][]> b = new LinkedHashMap<>();
    List<String> names = List.copyOf(examples.get(0).features().keySet());
    for (String n : names) {
      long[][] v = new long[rows][];
      for (int i = 0; i < rows; i++) {
        v[i] = Arrays.copyOf(examples.get(i % examples.size()).features().get(n), length);
      }
      b.put(n, v);
    }
    return b;
  }

  private static Map<String, float[]> random(List<Parameter> parameters, long seed) {
    Random r = new Random(seed);
    Map<String, float[]> v = new LinkedHashMap<>();
    for (Parameter p : parameters) {
      float[] x = new float[(int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b)];
      for (int i = 0; i < x.length; i++) {
        x[i] = (float) (0.02 * r.nextGaussian());
      }
      v.put(p.getName(), x);
    }
    return v;
  }

  private static void print(List<Row> rows, int batch, int length, int runs, double wall) {
    double base = rows.get(0).quantile(0.5);
    double one = rows.stream().filter(r -> r.name().startsWith("gathered, 1 ")).findFirst().orElseThrow().quantile(0.5);
    System.out.println();
    System.out.printf(Locale.ROOT, "batch %d rows x %d tokens, %d timed runs per row, host %s, CPU (%d cores), wall %.0f s%n%n",
        batch, length, runs, SentimentData.HOST, Runtime.getRuntime().availableProcessors(), wall);
    System.out.println("| configuration | rows/s | p50 batch latency | p99 batch latency | time / base | throughput / 1 adapter |");
    System.out.println("|---|---:|---:|---:|---:|---:|");
    for (Row r : rows) {
      double p50 = r.quantile(0.5);
      System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f ms | %.1f ms | %.3f | %s |%n", r.name(), batch / p50, p50 * 1e3,
          r.quantile(0.99) * 1e3, p50 / base, r.name().startsWith("gathered") ? String.format(Locale.ROOT, "%.3f", one / p50) : "");
    }
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException(args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
