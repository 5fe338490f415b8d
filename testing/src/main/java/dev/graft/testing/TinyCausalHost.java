package dev.graft.testing;

import dev.graft.compiler.HostModel;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import java.util.List;
import java.util.Random;

/**
 * A tiny host with a vocabulary-logits output, for the causal LM loss: {@link TinyBertHost}'s
 * hidden states times an untied vocabulary projection {@code lm_head.weight} [8, 50] (node
 * {@code /lm_head/MatMul}). Outputs: {@code logits} [batch, sequence, 50] first, then {@code
 * last_hidden_state}. (The attention is not causal; the loss does not care.)
 */
public final class TinyCausalHost {
  public static final int VOCAB = TinyBertHost.VOCAB;

  private TinyCausalHost() {}

  public static Graph graph(long seed) {
    Graph g = TinyBertHost.graph(seed);
    Random r = new Random(seed + 1);
    double[] w = new double[TinyBertHost.HIDDEN * VOCAB];
    for (int i = 0; i < w.length; i++) {
      w[i] = r.nextGaussian() / Math.sqrt(TinyBertHost.HIDDEN);
    }
    g.addInitializer(Tensors.floats("lm_head.weight", TensorType.FLOAT,
        List.of((long) TinyBertHost.HIDDEN, (long) VOCAB), w), false);
    g.opTo("logits", "/lm_head/MatMul", "MatMul", List.of("last_hidden_state", "lm_head.weight"));
    g.outputs().add(0, "logits");
    ShapeInference.run(g);
    return g;
  }

  public static HostModel host(long seed) {
    return HostModel.of("tiny-causal", OnnxExport.write(graph(seed), "tiny-causal"));
  }
}
