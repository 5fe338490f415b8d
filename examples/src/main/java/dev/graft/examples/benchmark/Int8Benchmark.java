package dev.graft.examples.benchmark;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.ir.Int8Quantizer;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.dsl.Graft;
import dev.graft.examples.sentiment.SentimentData;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.train.LearningRate;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The sentiment example's LoRA on the float all-MiniLM-L6-v2 and on its int8 twin (langchain4j's
 * {@code -q} jar: every linear layer {@code MatMulInteger} over int8 weights, activations quantized
 * by {@code DynamicQuantizeLinear}), side by side in one run: the same declaration (LoRA r8, alpha
 * 16, on the query and value projections, a 2-label head), data, batches, schedule and seeds as
 * {@code SentimentExample}. On the int8 host the weights stay int8 and the gradient passes its
 * int8 layers straight through (docs/int8-hosts.md), once with each {@link Int8Backward}: the
 * dequantized weight in float32 (the default) and the integer product of the quantized gradient;
 * and on Graft's own int8 twin of the float host ({@code HostModel.quantizeInt8}, written to a
 * temporary file) with the integer backward, and on the float host itself with the integer
 * backward (float32 forward, integer products with its frozen weights).
 *
 * <p>Prints one line per row as it finishes and a Markdown table at the end: host and backward,
 * held-out accuracy, training steps per second, and each row's steps/s as a ratio to the float
 * host's.
 *
 * <p>Arguments (all optional): {@code --epochs N} (default 1; the example's own default is 3).
 */
public final class Int8Benchmark {
  /** The example's LoRA sites on both hosts: {@code MatMul} on the float one, {@code MatMul_quant} on the int8 one. */
  static final String QUERY_VALUE = ".*/attention/self/(query|value)/MatMul(_quant)?";

  record Result(String host, long params, long steps, double accuracy, double stepsPerSecond, double wallSeconds) {}

  /** A row: the host resource, the backward, and whether Graft quantizes the (float) host first. */
  private record Row(String host, Int8Backward backward, String label, boolean quantize) {
    Row(String host, Int8Backward backward, String label) {
      this(host, backward, label, false);
    }
  }

  private Int8Benchmark() {}

  private static final List<Row> ROWS = List.of(new Row(SentimentData.HOST, Int8Backward.DEQUANTIZED, "float"),
      new Row(SentimentData.HOST, Int8Backward.INTEGER, "float, backward integer"),
      new Row(SentimentData.INT8_HOST, Int8Backward.DEQUANTIZED, "int8, backward dequantized (default)"),
      new Row(SentimentData.INT8_HOST, Int8Backward.INTEGER, "int8, backward integer"),
      new Row(SentimentData.HOST, Int8Backward.INTEGER, "int8 twin by HostModel.quantizeInt8, backward integer", true));

  public static void main(String[] args) throws IOException, InterruptedException {
    int epochs = 1;
    int row = -1;
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--epochs") && i + 1 < args.length) {
        epochs = Integer.parseInt(args[++i]);
      } else if (args[i].equals("--row") && i + 1 < args.length) {
        row = Integer.parseInt(args[++i]);
      } else {
        throw new IllegalArgumentException("unknown argument '" + args[i] + "'; expected --epochs N (--row N: one row, in this process)");
      }
    }
    if (row >= 0) {
      Row r = ROWS.get(row);
      Result result = run(r, SentimentData.load(), epochs);
      System.out.printf(Locale.ROOT, "row_result=%d %d %.17g %.17g %.17g%n", result.params(), result.steps(),
          result.accuracy(), result.stepsPerSecond(), result.wallSeconds());
      return;
    }
    long start = System.nanoTime();
    SentimentData data = SentimentData.load();
    List<Result> results = new ArrayList<>();
    for (int i = 0; i < ROWS.size(); i++) {
      // Each row in its own JVM: in one process a later run trains slower or faster by up to a
      // third depending on what ran before it (measured), which would bias the steps/s column.
      Result r = child(i, ROWS.get(i).label(), epochs);
      results.add(r);
      System.out.printf(Locale.ROOT, "host: %s params=%d steps=%d accuracy=%.4f steps_per_s=%.3f wall_s=%.1f%n",
          r.host(), r.params(), r.steps(), r.accuracy(), r.stepsPerSecond(), r.wallSeconds());
    }
    Result f = results.get(0);
    Result fi = results.get(1);
    Result q = results.get(2);
    Result qi = results.get(3);
    Result twin = results.get(4);
    System.out.println();
    System.out.printf(Locale.ROOT, "LoRA r8 (alpha 16) on query and value, %d epoch(s), batch 16, %d train / %d held-out"
        + " sentences, CPU, one run%n%n", epochs, data.train().size(), data.heldOut().size());
    System.out.println("| host, backward | trainable parameters | held-out accuracy | steps/s | steps/s vs float |");
    System.out.println("|---|---:|---:|---:|---:|");
    for (Result r : results) {
      System.out.printf(Locale.ROOT, "| %s | %,d | %.4f | %.2f | %.2fx |%n", r.host(), r.params(), r.accuracy(),
          r.stepsPerSecond(), r.stepsPerSecond() / f.stepsPerSecond());
    }
    System.out.printf(Locale.ROOT, "%nresult: float_accuracy=%.4f int8_accuracy=%.4f int8_integer_accuracy=%.4f"
        + " float_steps_per_s=%.3f int8_steps_per_s=%.3f int8_integer_steps_per_s=%.3f int8_speed_ratio=%.3f"
        + " int8_integer_speed_ratio=%.3f twin_integer_accuracy=%.4f twin_integer_speed_ratio=%.3f"
        + " float_integer_accuracy=%.4f float_integer_speed_ratio=%.3f wall_s=%.1f%n",
        f.accuracy(), q.accuracy(), qi.accuracy(), f.stepsPerSecond(), q.stepsPerSecond(), qi.stepsPerSecond(),
        q.stepsPerSecond() / f.stepsPerSecond(), qi.stepsPerSecond() / f.stepsPerSecond(), twin.accuracy(),
        twin.stepsPerSecond() / f.stepsPerSecond(), fi.accuracy(), fi.stepsPerSecond() / f.stepsPerSecond(),
        (System.nanoTime() - start) / 1e9);
  }

  /** Runs row {@code i} in a child JVM (the same class path) and reads its result line. */
  private static Result child(int i, String label, int epochs) throws IOException, InterruptedException {
    String[] f = ChildJvm.run(Int8Benchmark.class, List.of("--row", Integer.toString(i), "--epochs",
        Integer.toString(epochs)), "row_result=", "row '" + label + "'").split(" ");
    return new Result(label, Long.parseLong(f[0]), Long.parseLong(f[1]), Double.parseDouble(f[2]),
        Double.parseDouble(f[3]), Double.parseDouble(f[4]));
  }

  private static Result run(Row row, SentimentData data, int epochs) throws IOException {
    String label = row.label();
    System.err.println("== " + label);
    long start = System.nanoTime();
    HostModel host = SentimentData.readHost(row.host());
    ModelOptions options = ModelOptions.defaults().withSeed(42);
    if (row.quantize()) {
      Int8Quantizer.Result q = host.quantizeInt8("all-minilm-l6-v2-int8.onnx");
      System.err.println("quantized " + q.quantized().size() + " linear layers; left float: " + q.skipped());
      Path file = Files.createTempDirectory("graft-int8-host").resolve("all-minilm-l6-v2-int8.onnx");
      Files.write(file, q.host().model().toByteArray());
      host = HostModel.read(file);
      options = options.withHost(file);
    }
    Int8Backward backward = row.backward();
    CompiledGraft graft = Graft.host(host).name("SentimentLora")
        .lora(QUERY_VALUE, o -> o.rank(8).alpha(16)).classification(2).int8Backward(backward).compile();
    Trainer trainer = Trainer.builder()
        .batchSize(16).epochs(epochs).learningRate(LearningRate.linear(2e-3f, 0.1)).seed(1).build();
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), options)) {
      long params = model.getParameterCount();
      TrainingResult result = trainer.fit(model, data.train(), data.heldOut());
      return new Result(label, params, result.steps(), result.finalAccuracy(), result.stepsPerSecond(),
          (System.nanoTime() - start) / 1e9);
    }
  }
}
