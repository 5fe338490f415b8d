package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.Adapters;
import dev.graft.testing.Feed;
import dev.graft.testing.TinyDecoderHost;
import dev.graft.testing.TinyGpt2Host;
import dev.graft.testing.WholeStepCheck;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Adapters on the LM head of a decoder whose head is tied to its token embedding ({@code
 * /lm_head/MatMul} = MatMul(h, W) with W a folded transposed copy of {@code wte}, a graph output): their
 * nodes are in both graphs,
 * their gradients are not zero, and the causal-LM loss falls when only they train.
 */
class LmHeadAdaptersTest {
  private static final String HEAD = "/lm_head/MatMul";

  private static AdapterSpec adapter(String kind) {
    return kind.equals("lora") ? Adapters.lora(HEAD, 4, 8) : Adapters.of("bottleneck", HEAD, Map.of("reduction", 2));
  }

  @ParameterizedTest
  @ValueSource(strings = {"lora", "bottleneck"})
  void adaptersOnATiedLmHeadAreInTheGraphsAndTrain(String kind) throws OrtException {
    try (WholeStepCheck f = WholeStepCheck.of(TinyGpt2Host.withFoldedHead(DecoderHostsTest.SEED),
        new CausalLmSpec(TinyDecoderHost.LM_OUTPUT, -100, 0.0, null), adapter(kind))) {
      List<String> names = f.params.stream().map(Parameter::getName).toList();
      assertTrue(!names.isEmpty(), "parameters: " + names);
      for (var graph : List.of(f.graft.inference(), f.graft.train())) {
        for (String p : names) {
          assertTrue(graph.getGraph().getNodeList().stream().anyMatch(n -> n.getInputList().contains(p)),
              p + " is read by a node of " + graph.getGraph().getName());
        }
      }
      long[] sequence = {3, 17, 22, 8, 1, 5, 9, 30};
      long[] ids = new long[8 * sequence.length];
      for (int b = 0; b < 8; b++) {
        System.arraycopy(sequence, 0, ids, b * sequence.length, sequence.length);
      }
      long[] mask = new long[ids.length];
      Arrays.fill(mask, 1);
      long[] shape = {8, sequence.length};
      Map<String, Feed> feeds = Map.of("input_ids", Feed.longs(ids, shape), "attention_mask", Feed.longs(mask, shape),
          "labels", Feed.longs(ids, shape));
      Map<String, double[]> init = f.initialValues(3);
      Map<String, double[]> grads = f.run(feeds, f.zeroMoments(init), 1, 0.01,
          Set.copyOf(names.stream().map(n -> n + GraftCompiler.GRADIENT_SUFFIX).toList()));
      double norm = grads.values().stream().flatMapToDouble(Arrays::stream).map(x -> x * x).sum();
      assertTrue(norm > 1e-8, kind + " gradients are not zero: |g|² = " + norm);
      WholeStepCheck.Training t = f.train(feeds, init, 60, 0.02);
      double last = f.run(feeds, t.state(), 61, 0, Set.of("loss")).get("loss")[0];
      System.out.printf("%s on the tied LM head: loss %.4f -> %.4f after 60 steps%n", kind, t.firstLoss(), last);
      assertTrue(last < 0.8 * t.firstLoss(), kind + " loss " + t.firstLoss() + " -> " + last);
    }
  }
}
