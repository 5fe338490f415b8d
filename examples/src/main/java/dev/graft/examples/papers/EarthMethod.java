package dev.graft.examples.papers;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.data.HostTensor;
import dev.graft.runtime.data.Split;
import dev.graft.runtime.train.TrainingResult;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;

/**
 * Earth-Adapter (Hu et al. 2025, mixture of frequency adaptation) on the torch-exported ViT fixture (2 layers ×
 * 32, 16×16 RGB images in 4×4 patches: a class token and a 4×4 grid), beside LoRA r8 on the same ViT's query and
 * value, on a synthetic task: classify an image by the dominant spatial frequency of a coloured grating (1, 3 or
 * 6–7 cycles across the image, random orientation, phase and colour, plus noise). The images are generated
 * deterministically here, quantized to 8-bit values p and fed to the ViT as float pixels {@code (p − 127.5) / 64}
 * {@code [3, 16, 16]} per image. The sentiment host of the other rows is not used; this row's LoRA reference is
 * its own, reported in the row's extra. Each method's learning rate is chosen from {@link #LEARNING_RATES} on a
 * validation split of the training images (seed 13), never on the held-out images, then it trains on all of them.
 * The Earth-Adapter takes its default placement, {@code input = block}: the reference's, on each block's output.
 */
final class EarthMethod implements PaperMethod {
  static final String VIT = "integration/src/test/resources/hosts/torch/vit_opset17.onnx";
  static final int SIDE = 16;
  static final int PIXELS = 3 * SIDE * SIDE;

  @Override
  public String id() {
    return "earth";
  }

  @Override
  public String name() {
    return "Earth-Adapter r4 (Hu et al. 2025; ViT fixture, frequency task)";
  }

  @Override
  public PaperResult run(Context context, Path saved) throws Exception {
    Path hostFile = find(VIT);
    HostModel vit = HostModel.of("vit", ModelProto.parseFrom(Files.readAllBytes(hostFile)));
    List<Example> train = images(600, 11);
    List<Example> heldOut = images(300, 12);
    int epochs = context.epochs();
    CompiledGraft earthGraft = Graft.host(vit).name("PapersEarth")
        .earthAdapter("", o -> o.set("reduction", 8).set("cutoff", 0.5))
        .classification(3, c -> c.pooling(ClassificationSpec.Pooling.MEAN)).compile();
    CompiledGraft loraGraft = Graft.host(vit).name("PapersEarthLora")
        .lora(".*/attention/attention/(query|value)/MatMul", o -> o.rank(8).alpha(16))
        .classification(3, c -> c.pooling(ClassificationSpec.Pooling.MEAN)).compile();
    Split<Example> split = Split.of(train, VALIDATION, VALIDATION_SEED);
    Choice earthLr = choose(earthGraft, epochs, split, hostFile);
    Choice loraLr = choose(loraGraft, epochs, split, hostFile);
    Row earth = train(earthGraft, epochs, earthLr.best(), train, heldOut, saved, hostFile);
    Path loraSaved = saved.resolve("lora-reference");
    Files.createDirectories(loraSaved);
    Row lora = train(loraGraft, epochs, loraLr.best(), train, heldOut, loraSaved, hostFile);
    String extra = String.format(Locale.ROOT, "ViT fixture, %d epochs, %d train / %d held-out images, 3 classes;"
        + " learning rates chosen on a validation split of the training images (%d of them, seed %d; trained on the"
        + " other %d), then trained on all %d: Earth-Adapter lr %s (validation %s); LoRA r8 (query, value) on the"
        + " same ViT and data: lr %s (validation %s), params=%d accuracy=%.4f steps_per_s=%.2f",
        epochs, train.size(), heldOut.size(), split.heldOut().size(), VALIDATION_SEED, split.train().size(),
        train.size(), earthLr.best(), earthLr.scores(), loraLr.best(), loraLr.scores(), lora.params(),
        lora.accuracy(), lora.stepsPerSecond());
    return new PaperResult(name(), earth.params(), PapersBenchmark.bytes(saved) - PapersBenchmark.bytes(loraSaved),
        earth.accuracy(), earth.stepsPerSecond(), extra);
  }

  /** The learning rates tried on the validation split, for each method alike. */
  static final List<Float> LEARNING_RATES = List.of(5e-3f, 1e-2f, 2e-2f, 5e-2f);
  /** The share of the training images held out of fitting to choose the learning rate (never the held-out test images). */
  static final double VALIDATION = 0.2;
  static final long VALIDATION_SEED = 13;

  record Row(long params, double accuracy, double stepsPerSecond) {}

  /** The chosen learning rate and every rate's validation accuracy. */
  record Choice(float best, Map<Float, Double> accuracies) {
    /** E.g. {@code 0.005: 0.8167, 0.01: 0.9000, …}. */
    String scores() {
      List<String> parts = new ArrayList<>();
      accuracies.forEach((lr, a) -> parts.add(String.format(Locale.ROOT, "%s: %.4f", lr, a)));
      return String.join(", ", parts);
    }
  }

  /** Trains {@code graft} on the split's training part at each of {@link #LEARNING_RATES}; the best on validation (ties: the smaller). */
  private static Choice choose(CompiledGraft graft, int epochs, Split<Example> split, Path host) throws Exception {
    Map<Float, Double> scores = new java.util.LinkedHashMap<>();
    float best = Float.NaN;
    for (float lr : LEARNING_RATES) {
      try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42).withHost(host))) {
        double accuracy = PapersBenchmark.trainer(epochs, lr).fit(model, split.train(), split.heldOut()).finalAccuracy();
        scores.put(lr, accuracy);
        if (Float.isNaN(best) || accuracy > scores.get(best)) {
          best = lr;
        }
      }
    }
    return new Choice(best, scores);
  }

  private static Row train(CompiledGraft graft, int epochs, float lr, List<Example> train, List<Example> heldOut,
      Path saved, Path host) throws Exception {
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(42).withHost(host))) {
      TrainingResult result = PapersBenchmark.trainer(epochs, lr).fit(model, train, heldOut);
      model.saveAdapter(saved);
      return new Row(model.getParameterCount(), result.finalAccuracy(), result.stepsPerSecond());
    }
  }

  /**
   * {@code n} images, labels 0 (1 cycle across the image), 1 (3 cycles), 2 (6 or 7 cycles) in turn: a grating
   * {@code cos(2π(fy·y + fx·x)/16 + φ)} along a random one of four orientations, each channel scaled by a random
   * colour weight, plus Gaussian noise (σ 0.35), quantized to 0..255 and normalized to {@code (p − 127.5) / 64}.
   */
  static List<Example> images(int n, long seed) {
    Random r = new Random(seed);
    int[][] directions = {{1, 0}, {0, 1}, {1, 1}, {1, -1}};
    List<Example> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int label = i % 3;
      int cycles = switch (label) {
        case 0 -> 1;
        case 1 -> 3;
        default -> 6 + r.nextInt(2);
      };
      int[] d = directions[r.nextInt(directions.length)];
      double phase = r.nextDouble() * 2 * Math.PI;
      float[] pixels = new float[PIXELS];
      for (int c = 0; c < 3; c++) {
        double colour = 0.3 + 0.7 * r.nextDouble();
        for (int y = 0; y < SIDE; y++) {
          for (int x = 0; x < SIDE; x++) {
            double v = colour * Math.cos(2 * Math.PI * cycles * (d[0] * y + d[1] * x) / SIDE + phase)
                + 0.35 * r.nextGaussian();
            long p = Math.max(0, Math.min(255, Math.round(127.5 + 80 * v)));
            pixels[(c * SIDE + y) * SIDE + x] = (p - 127.5f) / 64;
          }
        }
      }
      out.add(Example.ofTensors(Map.of("pixel_values", HostTensor.floats(new long[] {3, SIDE, SIDE}, pixels)), label));
    }
    return out;
  }

  /** {@code relative} under the working directory or the nearest folder above it that has it. */
  private static Path find(String relative) {
    for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
      if (Files.isRegularFile(dir.resolve(relative))) {
        return dir.resolve(relative);
      }
    }
    throw new IllegalStateException("cannot find " + relative + " under the working directory or above it;"
        + " run the benchmark from the Graft checkout");
  }
}
