package dev.graft.examples.benchmark;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.session.Device;
import dev.graft.runtime.session.FusedKernels;
import dev.graft.runtime.session.NodePlacement;
import dev.graft.spec.manifest.HostInput;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.jspecify.annotations.Nullable;

/**
 * Training speed on the real all-MiniLM-L6-v2 host, in one run: LoRA r8 on query and value plus a
 * 2-class head, AdamW, batch 32 at 64 and 128 tokens (random token ids, every position attended).
 * Per shape it times, in rounds (each round runs each configuration once, so that a change of the
 * machine's load falls on all alike): the bare host in a plain ONNX Runtime session (no Graft),
 * Graft's forward ({@code AdapterModel.predict}), Graft's training step ({@code trainStep}) and
 * the same step with its fused ops run as their standard-op bodies ({@code
 * ModelOptions.withFusedKernels(false)}: what a session without Graft's native kernels runs);
 * it prints medians and the ratios train/bare-forward and train/graft-forward (medians of each
 * round's ratio, the two runs of a ratio being neighbours in time), the first losses
 * (to compare graphs across versions: they are deterministic), the peak resident memory of a
 * process that only runs the bare forward or only trains (each a child JVM, read from {@code
 * /proc/self/status} {@code VmHWM}), and a per-op-type summary of one profiled training step at
 * the first shape (ONNX Runtime's profile JSON, {@code ModelOptions.withProfiling}).
 *
 * <p>Arguments (all optional): {@code --lengths 64,128}, {@code --batch 32}, {@code --runs N}
 * (timed runs per configuration, default 7), {@code --warmup N} (default 2), {@code --threads N}
 * (ONNX Runtime intra-op threads; default its own), {@code --no-rss}, {@code --no-profile},
 * {@code --no-int8}, {@code --device cpu|cuda} (default cpu; cuda needs {@code onnxruntime_gpu},
 * {@code -Pcuda}, and runs the bare forward on CUDA too; the profile then lists the nodes that fell
 * back to the CPU).
 *
 * <p>On the CPU, unless {@code --no-int8}, the same rounds also time the int8 twin of the host
 * (langchain4j's {@code -q} all-MiniLM-L6-v2) in a bare session and the same LoRA on it trained
 * with {@code int8Backward = DEQUANTIZED} (the default) and {@code INTEGER} (reduced precision:
 * int8 host products forward and backward; adapters, optimizer state and loss float32), and the
 * same LoRA with {@code INTEGER} on Graft's own int8 twin of the float host ({@code
 * HostModel.quantizeInt8}) and on the float host itself (float32 forward, integer backward
 * products), and print their ratios to the float host's bare forward and to the int8 host's own.
 */
public final class SpeedBenchmark {
  private static final float LEARNING_RATE = 1e-3f;
  private static final int PROFILED_STEPS = 3;
  private static final int TOP_OPS = 14;
  private static final String NAME = "Speed";

  private SpeedBenchmark() {}

  interface Run {
    void once() throws Exception;
  }

  public static void main(String[] args) throws Exception {
    int[] lengths = {64, 128};
    int batch = 32;
    int runs = 7;
    int warmup = 2;
    int threads = 0;
    Device device = Device.CPU;
    boolean rss = true;
    boolean profile = true;
    boolean int8 = true;
    String child = null;
    Path graphs = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--lengths" -> lengths = Arrays.stream(value(args, ++i).split(",")).mapToInt(Integer::parseInt).toArray();
        case "--batch" -> batch = Integer.parseInt(value(args, ++i));
        case "--runs" -> runs = Integer.parseInt(value(args, ++i));
        case "--warmup" -> warmup = Integer.parseInt(value(args, ++i));
        case "--threads" -> threads = Integer.parseInt(value(args, ++i));
        case "--device" -> device = Device.valueOf(value(args, ++i).toUpperCase(Locale.ROOT));
        case "--no-rss" -> rss = false;
        case "--no-profile" -> profile = false;
        case "--no-int8" -> int8 = false;
        case "--child" -> child = value(args, ++i);
        case "--graphs" -> graphs = Path.of(value(args, ++i));
        default -> throw new IllegalArgumentException("unknown argument '" + args[i]
            + "'; expected --lengths L,L, --batch N, --runs N, --warmup N, --threads N, --device cpu|cuda, --no-rss, --no-profile or --no-int8");
      }
    }
    if (runs < 1 || batch < 1 || lengths.length == 0 || Arrays.stream(lengths).anyMatch(l -> l < 2 || l > 512)) {
      throw new IllegalArgumentException("--runs and --batch must be at least 1, --lengths in 2..512");
    }
    ModelOptions options = ModelOptions.defaults().withIntraOpThreads(threads).withDevice(device);
    if (child != null) {
      child(child, graphs, options, batch, lengths[0], threads, warmup);
      return;
    }
    HostModel host = SentimentData.readHost();
    CompiledGraft graft = lora(host, Int8Backward.DEQUANTIZED);
    // The reduced-precision rows (CPU): the same declaration on the int8 twin with each backward, on
    // the float host with the integer backward, and on Graft's own int8 twin of it
    // (HostModel.quantizeInt8, its file in a temporary folder).
    int8 &= device == Device.CPU;
    CompiledGraft graft8 = null;
    CompiledGraft graft8d = null;
    CompiledGraft floatInteger = null;
    CompiledGraft twin = null;
    HostModel host8 = null;
    ModelOptions twinOptions = options;
    if (int8) {
      host8 = SentimentData.readHost(SentimentData.INT8_HOST);
      graft8 = lora(host8, Int8Backward.INTEGER);
      graft8d = lora(host8, Int8Backward.DEQUANTIZED);
      floatInteger = lora(host, Int8Backward.INTEGER);
      Path file = Files.createTempDirectory("graft-speed-int8-twin").resolve("all-minilm-l6-v2-int8.onnx");
      Files.write(file, host.quantizeInt8(file.getFileName().toString()).host().model().toByteArray());
      twin = lora(HostModel.read(file), Int8Backward.INTEGER);
      twinOptions = options.withHost(file);
    }
    List<String> lines8 = new ArrayList<>();
    long start = System.nanoTime();
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    List<String> lines = new ArrayList<>();
    for (int length : lengths) {
      Map<String, long[][]> inputs = inputs(graft, batch, length);
      long[] labels = labels(batch);
      Map<String, OnnxTensor> feeds = new HashMap<>();
      List<Float> losses = new ArrayList<>();
      List<Float> losses8 = new ArrayList<>();
      List<Float> lossesPlain = new ArrayList<>();
      try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
        if (threads > 0) {
          so.setIntraOpNumThreads(threads);
        }
        if (device == Device.CUDA) {
          so.addCUDA(0);
        }
        try (OrtSession bare = env.createSession(host.model().toByteArray(), so);
            AdapterModel model = AdapterModel.open(Graft.graphs(graft), options);
            AdapterModel plain = AdapterModel.open(Graft.graphs(graft), options.withFusedKernels(false));
            OrtSession bare8 = host8 == null ? null : env.createSession(host8.model().toByteArray(), so);
            AdapterModel model8 = graft8 == null ? null : AdapterModel.open(Graft.graphs(graft8), options);
            AdapterModel model8d = graft8d == null ? null : AdapterModel.open(Graft.graphs(graft8d), options);
            AdapterModel modelTwin = twin == null ? null : AdapterModel.open(Graft.graphs(twin), twinOptions);
            AdapterModel modelFloatInteger = floatInteger == null ? null
                : AdapterModel.open(Graft.graphs(floatInteger), options)) {
          for (var e : inputs.entrySet()) {
            feeds.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
          }
          Map<String, Run> configurations = new LinkedHashMap<>();
          configurations.put("bare", () -> {
            try (OrtSession.Result r = bare.run(feeds)) {
              r.get(0);
            }
          });
          configurations.put("forward", () -> model.predict(inputs));
          configurations.put("train", () -> losses.add(model.trainStep(inputs, labels, LEARNING_RATE)));
          configurations.put("plain", () -> lossesPlain.add(plain.trainStep(inputs, labels, LEARNING_RATE)));
          if (model8 != null) {
            configurations.put("bare8", () -> {
              try (OrtSession.Result r = bare8.run(feeds)) {
                r.get(0);
              }
            });
            configurations.put("train8", () -> losses8.add(model8.trainStep(inputs, labels, LEARNING_RATE)));
            configurations.put("train8d", () -> model8d.trainStep(inputs, labels, LEARNING_RATE));
            configurations.put("twin", () -> modelTwin.trainStep(inputs, labels, LEARNING_RATE));
            configurations.put("floatInteger", () -> modelFloatInteger.trainStep(inputs, labels, LEARNING_RATE));
          }
          Map<String, double[]> seconds = measure(configurations, warmup, runs);
          double[] b = seconds.get("bare");
          double[] f = seconds.get("forward");
          double[] t = seconds.get("train");
          double[] p = seconds.get("plain");
          double[] trainPerBare = new double[runs];
          double[] trainPerForward = new double[runs];
          double[] plainPerBare = new double[runs];
          for (int r = 0; r < runs; r++) {
            trainPerBare[r] = t[r] / b[r];
            trainPerForward[r] = t[r] / f[r];
            plainPerBare[r] = p[r] / b[r];
          }
          lines.add(String.format(Locale.ROOT,
              "| %d×%d | %.3f s | %.3f s | %.3f s | %.2f | %.2f | %.3f s | %.2f | %s | %s |", batch, length, median(b),
              median(f), median(t), median(trainPerBare), median(trainPerForward), median(p), median(plainPerBare),
              firstLosses(losses), firstLosses(lossesPlain)));
          if (model8 != null) {
            double[] b8 = seconds.get("bare8");
            double[] t8 = seconds.get("train8");
            double[] t8d = seconds.get("train8d");
            double[] perBare = new double[runs];
            double[] perBare8 = new double[runs];
            double[] tt = seconds.get("twin");
            double[] tf = seconds.get("floatInteger");
            double[] dequantizedPerBare = new double[runs];
            double[] twinPerBare = new double[runs];
            double[] floatIntegerPerBare = new double[runs];
            for (int r = 0; r < runs; r++) {
              perBare[r] = t8[r] / b[r];
              perBare8[r] = t8[r] / b8[r];
              dequantizedPerBare[r] = t8d[r] / b[r];
              twinPerBare[r] = tt[r] / b[r];
              floatIntegerPerBare[r] = tf[r] / b[r];
            }
            lines8.add(String.format(Locale.ROOT,
                "| %d×%d | %.3f s | %.3f s | %.3f s | %.3f s | %.3f s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |",
                batch, length, median(b8), median(tf), median(t8d), median(t8), median(tt), median(floatIntegerPerBare),
                median(dequantizedPerBare), median(perBare), median(twinPerBare), median(perBare8), median(trainPerBare),
                firstLosses(losses8)));
          }
        } finally {
          feeds.values().forEach(OnnxTensor::close);
        }
      }
    }
    System.out.println();
    System.out.printf(Locale.ROOT, "all-MiniLM-L6-v2, LoRA r8 on query and value + 2-class head, AdamW; %d timed runs"
        + " (medians), %d warm-up; %s, %d cores; Graft's fused CPU kernels %s%n%n", runs, warmup, device,
        Runtime.getRuntime().availableProcessors(), FusedKernels.available() ? "loaded"
            : "not available (" + FusedKernels.unavailableReason() + ")");
    System.out.println("| batch×tokens | bare ORT forward | Graft forward | Graft train step | train / bare forward"
        + " | train / Graft forward | train step, fused ops as standard ops | its / bare forward | first losses"
        + " | first losses, standard ops |");
    System.out.println("|---|---:|---:|---:|---:|---:|---:|---:|---|---|");
    lines.forEach(System.out::println);
    if (graft8 != null) {
      System.out.println();
      System.out.println("Reduced precision, the same LoRA, in the same rounds: the float host with int8Backward ="
          + " INTEGER; langchain4j's -q all-MiniLM-L6-v2 with DEQUANTIZED (the default) and INTEGER; Graft's int8"
          + " twin of the float host (HostModel.quantizeInt8) with INTEGER:");
      System.out.println();
      System.out.println("| batch×tokens | int8 bare ORT forward | float host train, integer | int8 train, dequantized"
          + " | int8 train, integer | Graft's twin train, integer | float integer / float bare forward"
          + " | int8 dequantized / float bare forward | int8 integer / float bare forward | twin / float bare forward"
          + " | int8 integer / int8 bare forward | float train / float bare forward | first losses, int8 integer |");
      System.out.println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
      lines8.forEach(System.out::println);
    }
    if (rss) {
      Path dir = Files.createTempDirectory("graft-speed-graphs");
      graft.writeTo(dir);
      Path dir8 = null;
      Path dirFloatInteger = null;
      if (graft8 != null) {
        dir8 = Files.createTempDirectory("graft-speed-graphs-int8");
        graft8.writeTo(dir8);
        dirFloatInteger = Files.createTempDirectory("graft-speed-graphs-float-integer");
        floatInteger.writeTo(dirFloatInteger);
      }
      System.out.println();
      System.out.println("| batch×tokens | peak RSS, bare ORT forward | peak RSS, Graft training" + (dir8 == null ? " |"
          : " | peak RSS, float training, integer backward | peak RSS, int8 bare forward | peak RSS, int8 training |"));
      System.out.println("|---|---:|---:|" + (dir8 == null ? "" : "---:|---:|---:|"));
      for (int length : lengths) {
        System.out.printf(Locale.ROOT, "| %d×%d | %,d MiB | %,d MiB |%s%n", batch, length,
            childPeak("bare", dir, batch, length, threads, device), childPeak("train", dir, batch, length, threads, device),
            dir8 == null ? "" : String.format(Locale.ROOT, " %,d MiB | %,d MiB | %,d MiB |",
                childPeak("train", dirFloatInteger, batch, length, threads, device),
                childPeak("bare-int8", dir8, batch, length, threads, device),
                childPeak("train", dir8, batch, length, threads, device)));
      }
    }
    if (profile) {
      profile(graft, options, batch, lengths[0]);
    }
    System.out.printf(Locale.ROOT, "%nwall %.0f s%n", (System.nanoTime() - start) / 1e9);
  }

  /**
   * One bare forward or training process, which compiles nothing (the training one opens the
   * graphs the parent wrote): warm-up and a few runs, then its peak RSS on stdout.
   */
  private static void child(String what, @Nullable Path graphs, ModelOptions options, int batch, int length,
      int threads, int warmup) throws Exception {
    int runs = warmup + 3;
    switch (what) {
      case "bare", "bare-int8" -> {
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        byte[] model;
        String resource = what.equals("bare") ? SentimentData.HOST : SentimentData.INT8_HOST;
        try (var in = SpeedBenchmark.class.getClassLoader().getResourceAsStream(resource)) {
          if (in == null) {
            throw new IllegalStateException(resource + " is not on the class path");
          }
          model = in.readAllBytes();
        }
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
          if (threads > 0) {
            so.setIntraOpNumThreads(threads);
          }
          if (options.device() == Device.CUDA) {
            so.addCUDA(options.cudaDeviceId());
          }
          try (OrtSession bare = env.createSession(model, so)) {
            model = null;
            for (var e : inputs(List.copyOf(new java.util.TreeSet<>(bare.getInputNames())), batch, length).entrySet()) {
              feeds.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
            }
            for (int i = 0; i < runs; i++) {
              try (OrtSession.Result r = bare.run(feeds)) {
                r.get(0);
              }
            }
          } finally {
            feeds.values().forEach(OnnxTensor::close);
          }
        }
      }
      case "train" -> {
        if (graphs == null) {
          throw new IllegalArgumentException("--child train needs --graphs DIR");
        }
        AdapterGraphs g = AdapterGraphs.fromDirectory(graphs, NAME);
        Map<String, long[][]> inputs = inputs(g.manifest().getInputsList().stream().map(HostInput::getName).toList(),
            batch, length);
        try (AdapterModel model = AdapterModel.open(g, options)) {
          for (int i = 0; i < runs; i++) {
            model.trainStep(inputs, labels(batch), LEARNING_RATE);
          }
        }
      }
      default -> throw new IllegalArgumentException("--child must be bare, bare-int8 or train, got " + what);
    }
    System.out.println("peak_rss_kib=" + peakRssKib());
  }

  /** Runs this program as a child JVM for one configuration and returns its peak RSS in MiB. */
  private static long childPeak(String what, Path graphs, int batch, int length, int threads, Device device)
      throws IOException, InterruptedException {
    return Long.parseLong(ChildJvm.run(SpeedBenchmark.class, List.of("--child", what, "--graphs", graphs.toString(),
        "--batch", Integer.toString(batch), "--lengths", Integer.toString(length), "--threads", Integer.toString(threads),
        "--device", device.name()), "peak_rss_kib=", "the " + what + " child at " + batch + "x" + length)) / 1024;
  }

  private static long peakRssKib() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.substring(6).trim().split("\\s+")[0]);
      }
    }
    throw new IllegalStateException("/proc/self/status has no VmHWM line (not Linux?)");
  }

  /**
   * Profiles {@value #PROFILED_STEPS} training steps (after one warm-up) and prints kernel time per
   * step by op type, from ONNX Runtime's profile of the training session.
   */
  private static void profile(CompiledGraft graft, ModelOptions options, int batch, int length) throws IOException {
    Path dir = Files.createTempDirectory("graft-speed-profile");
    Map<String, long[][]> inputs = inputs(graft, batch, length);
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), options.withProfiling(dir))) {
      for (int i = 0; i <= PROFILED_STEPS; i++) {
        model.trainStep(inputs, labels(batch), LEARNING_RATE);
      }
    }
    Path trace;
    try (Stream<Path> files = Files.list(dir)) {
      trace = files.filter(f -> f.getFileName().toString().startsWith("Speed.train")).findFirst()
          .orElseThrow(() -> new IllegalStateException("no training profile written in " + dir));
    }
    Map<String, Double> micros = new TreeMap<>();
    Map<String, Integer> kernels = new TreeMap<>();
    Map<String, String> nodes = new HashMap<>();
    int steps = 0;
    for (JsonElement e : JsonParser.parseString(Files.readString(trace)).getAsJsonArray()) {
      JsonObject o = e.getAsJsonObject();
      String name = o.get("name").getAsString();
      if (o.get("cat").getAsString().equals("Session") && name.equals("model_run")) {
        steps++;
      } else if (o.get("cat").getAsString().equals("Node") && name.endsWith("_kernel_time")) {
        String op = o.getAsJsonObject("args").get("op_name").getAsString();
        micros.merge(op, o.get("dur").getAsDouble(), Double::sum);
        if (nodes.put(name, op) == null) {
          kernels.merge(op, 1, Integer::sum);
        }
      }
    }
    double total = micros.values().stream().mapToDouble(Double::doubleValue).sum();
    NodePlacement placement = NodePlacement.fromProfile(trace);
    List<String> offCuda = placement.notOn(NodePlacement.CUDA);
    System.out.printf(Locale.ROOT, "%nnode placement of the training step: %s", placement.countByProvider());
    if (options.device() == Device.CUDA) {
      System.out.printf(Locale.ROOT, "; %d nodes not on CUDA%s%n", offCuda.size(), offCuda.isEmpty() ? ""
          : ":\n  " + String.join("\n  ", offCuda));
    } else {
      System.out.println();
    }
    int runsSeen = steps;
    System.out.printf(Locale.ROOT, "%nprofile of the training step at %d×%d: %d kernels, %.1f ms kernel time per step"
        + " (mean of %d runs, the first a warm-up)%n%n", batch, length, nodes.size(), total / 1000 / runsSeen, runsSeen);
    System.out.println("| op type | kernels | ms / step | share |");
    System.out.println("|---|---:|---:|---:|");
    List<Map.Entry<String, Double>> ranked = new ArrayList<>(micros.entrySet());
    ranked.sort(Map.Entry.<String, Double>comparingByValue(Comparator.reverseOrder()).thenComparing(Map.Entry.comparingByKey()));
    double rest = 0;
    int restKernels = 0;
    for (int i = 0; i < ranked.size(); i++) {
      var r = ranked.get(i);
      if (i < TOP_OPS) {
        System.out.printf(Locale.ROOT, "| %s | %d | %.1f | %.1f%% |%n", r.getKey(), kernels.get(r.getKey()),
            r.getValue() / 1000 / runsSeen, 100 * r.getValue() / total);
      } else {
        rest += r.getValue();
        restKernels += kernels.get(r.getKey());
      }
    }
    if (rest > 0) {
      System.out.printf(Locale.ROOT, "| %d other op types | %d | %.1f | %.1f%% |%n", ranked.size() - TOP_OPS,
          restKernels, rest / 1000 / runsSeen, 100 * rest / total);
    }
  }

  /** Times each configuration {@code runs} times in rounds, after {@code warmup} rounds; seconds per round. */
  private static Map<String, double[]> measure(Map<String, Run> configurations, int warmup, int runs) throws Exception {
    Map<String, double[]> seconds = new LinkedHashMap<>();
    configurations.keySet().forEach(k -> seconds.put(k, new double[runs]));
    for (int round = 0; round < warmup + runs; round++) {
      for (var c : configurations.entrySet()) {
        long t0 = System.nanoTime();
        c.getValue().once();
        if (round >= warmup) {
          seconds.get(c.getKey())[round - warmup] = (System.nanoTime() - t0) / 1e9;
        }
      }
    }
    return seconds;
  }

  private static double median(double[] values) {
    double[] s = values.clone();
    Arrays.sort(s);
    return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  }

  private static Map<String, long[][]> inputs(CompiledGraft graft, int batch, int length) {
    return inputs(graft.manifest().getInputsList().stream().map(HostInput::getName).toList(), batch, length);
  }

  /** Random token ids (fixed seed) for {@code input_ids}, ones for {@code attention_mask}, zeros otherwise. */
  private static Map<String, long[][]> inputs(List<String> names, int batch, int length) {
    Random random = new Random(1);
    Map<String, long[][]> inputs = new LinkedHashMap<>();
    for (String name : names) {
      long[][] v = new long[batch][length];
      for (long[] row : v) {
        if (name.equals("input_ids")) {
          for (int t = 0; t < length; t++) {
            row[t] = 1000 + random.nextInt(20000);
          }
        } else if (name.equals("attention_mask")) {
          Arrays.fill(row, 1);
        }
      }
      inputs.put(name, v);
    }
    return inputs;
  }

  private static long[] labels(int batch) {
    long[] labels = new long[batch];
    for (int i = 0; i < batch; i++) {
      labels[i] = i % 2;
    }
    return labels;
  }

  /** The benchmark's declaration (LoRA at its default sites, a 2-class head) on {@code host}. */
  private static CompiledGraft lora(HostModel host, Int8Backward backward) {
    return Graft.host(host).name(NAME).lora("").classification(2).int8Backward(backward).compile();
  }

  private static List<String> firstLosses(List<Float> losses) {
    return losses.subList(0, Math.min(3, losses.size())).stream().map(l -> String.format(Locale.ROOT, "%.6f", l)).toList();
  }

  private static String value(String[] args, int i) {
    if (i >= args.length) {
      throw new IllegalArgumentException(args[i - 1] + " needs a value");
    }
    return args[i];
  }
}
