package dev.graft.runtime;

import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The tiny float32 host of the LoRA-family and CorDA model tests: word embeddings [{@value #VOCAB}, {@value
 * #HIDDEN}], then two layers of query and value projections with biases, summed through Tanh (the last one
 * {@code last_hidden_state}), with the node and module names of a BERT export and random weights (seed 1).
 */
final class QueryValueHost {
  static final int VOCAB = 30;
  static final int HIDDEN = 16;

  private QueryValueHost() {}

  /**
   * Writes the host to {@code dir/tiny-bert-host.onnx} and puts each weight's float32 values into {@code weights}
   * by initializer name.
   */
  static Path write(Path dir, Map<String, float[]> weights) throws IOException {
    Graph g = new Graph();
    List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
    g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
    g.addInput("attention_mask", TensorType.of(TensorType.INT64, bs));
    Random r = new Random(1);
    String h = g.op("/embeddings/word_embeddings/Gather", "Gather",
        List.of(weight(g, r, weights, "embeddings.word_embeddings.weight", 1, VOCAB, HIDDEN), "input_ids"));
    for (int layer = 0; layer < 2; layer++) {
      String prefix = "/encoder/layer." + layer + "/attention/self/";
      String q = linear(g, r, weights, prefix + "query", "encoder.layer." + layer + ".attention.self.query", h);
      String v = linear(g, r, weights, prefix + "value", "encoder.layer." + layer + ".attention.self.value", h);
      String sum = g.op(prefix + "Add", "Add", List.of(q, v));
      h = layer == 1 ? g.opTo("last_hidden_state", prefix + "Tanh", "Tanh", List.of(sum)) : g.op(prefix + "Tanh", "Tanh", List.of(sum));
    }
    g.outputs().add(h);
    ShapeInference.run(g);
    Path host = dir.resolve("tiny-bert-host.onnx");
    Files.write(host, OnnxExport.write(g, "tiny-bert-host").toByteArray());
    return host;
  }

  private static String linear(Graph g, Random r, Map<String, float[]> weights, String node, String module, String x) {
    String w = weight(g, r, weights, module + ".weight", 1 / Math.sqrt(HIDDEN), HIDDEN, HIDDEN);
    String b = weight(g, r, weights, module + ".bias", 0.1, HIDDEN);
    return g.op(node + "/Add", "Add", List.of(g.op(node + "/MatMul", "MatMul", List.of(x, w)), b));
  }

  private static String weight(Graph g, Random r, Map<String, float[]> weights, String name, double scale,
      long... dims) {
    int n = 1;
    for (long d : dims) {
      n *= (int) d;
    }
    double[] v = new double[n];
    float[] f = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = scale * r.nextGaussian();
      f[i] = (float) v[i];
    }
    weights.put(name, f);
    g.addInitializer(Tensors.floats(name, TensorType.FLOAT, Arrays.stream(dims).boxed().toList(), v), false);
    return name;
  }
}
