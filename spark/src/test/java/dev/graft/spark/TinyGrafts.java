package dev.graft.spark;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.testing.TinyBertHost;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * Grafts on the tiny BERT host for the scoring tests: the host written to {@code
 * target/spark-test/tiny.onnx} (the path executors read it from), LoRA rank 4 on the default
 * sites, a head; the adapter is set to seeded random values (so it differs from the initialized
 * parameters) and saved as an adapter folder.
 */
final class TinyGrafts {
  static final Path DIR = Path.of("target", "spark-test").toAbsolutePath();
  static final Path HOST = DIR.resolve("tiny.onnx");
  /** The tiny host's vocabulary and positions. */
  static final int VOCAB = 50;
  static final int MAX_POSITIONS = 16;

  private TinyGrafts() {}

  static synchronized Path host() {
    try {
      Files.createDirectories(DIR);
      if (!Files.isRegularFile(HOST)) {
        Path tmp = Files.createTempFile(DIR, "tiny", ".onnx");
        Files.write(tmp, OnnxExport.write(TinyBertHost.graph(5), "tiny").toByteArray());
        Files.move(tmp, HOST, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
      }
      return HOST;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static AdapterGraphs classification(int labels) {
    CompiledGraft graft = Graft.host(host()).name("TinyScore").lora("", o -> o.rank(4)).classification(labels).compile();
    return Graft.graphs(graft);
  }

  static AdapterGraphs regression(int targets) {
    CompiledGraft graft = Graft.host(host()).name("TinyRegression").lora("", o -> o.rank(4)).regression(targets).compile();
    return Graft.graphs(graft);
  }

  static ModelOptions options() {
    return ModelOptions.defaults().withTraining(false).withHost(host()).withIntraOpThreads(1);
  }

  /** Opens {@code graphs} in this JVM, sets every parameter to seeded random values and saves them to {@code dir}. */
  static Path randomAdapter(AdapterGraphs graphs, long seed, Path dir) {
    try (AdapterModel model = AdapterModel.open(graphs, options())) {
      Random random = new Random(seed);
      for (var p : model.getParameters()) {
        float[] v = new float[model.getParameter(p.getName()).length];
        for (int i = 0; i < v.length; i++) {
          v[i] = (float) (random.nextGaussian() * 0.5);
        }
        model.setParameter(p.getName(), v);
      }
      model.saveAdapter(dir);
    }
    return dir;
  }
}
