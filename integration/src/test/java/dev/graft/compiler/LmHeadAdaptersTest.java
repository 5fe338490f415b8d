package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.LinearSite;
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
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Adapters on the LM head of a decoder whose head is tied to its token embedding ({@code
 * /lm_head/MatMul}, a graph output), in both forms torch exports: MatMul(h, W) with W a folded
 * transposed copy of {@code wte}, and MatMul(h, Transpose(wte)) unfolded, where the site's weight
 * is the embedding table itself, read {@code [out, in]}. Their nodes are in both graphs, their
 * gradients are not zero and match central differences in float64, and the causal-LM loss falls
 * when only they train.
 */
class LmHeadAdaptersTest {
  private static final String HEAD = "/lm_head/MatMul";

  /** The tiny GPT-2 with its head folded ({@link TinyGpt2Host#withFoldedHead}) or read through a Transpose. */
  private static Graph host(boolean folded, int elem) {
    return folded ? TinyGpt2Host.withFoldedHead(DecoderHostsTest.SEED)
        : TinyGpt2Host.graph(DecoderHostsTest.SEED, TinyDecoderHost.LM_OUTPUT, elem);
  }

  @Test
  void theUnfoldedHeadIsALinearSiteOnTheEmbeddingTable() {
    LinearSite head = LinearSite.find(host(false, TensorType.FLOAT)).stream().filter(s -> s.node().equals(HEAD))
        .findFirst().orElseThrow();
    assertEquals("transformer.wte.weight", head.weight());
    assertTrue(head.outFirst());
    assertEquals(16, head.in());
    assertEquals(32, head.out());
  }

  /**
   * LoRA and a bottleneck on the unfolded head: every gradient equals central differences of the
   * float64 loss (h = 1e-5, |error| <= 1e-7 + 1e-6·|g|, relative L2 <= 1e-6), the same check and
   * tolerances as {@code DecoderTrainStepTest}.
   */
  @ParameterizedTest
  @ValueSource(strings = {"lora", "bottleneck"})
  void gradientsOnTheUnfoldedHeadMatchCentralDifferencesInFloat64(String kind) throws OrtException {
    try (WholeStepCheck f = WholeStepCheck.of(host(false, TensorType.DOUBLE),
        new CausalLmSpec(TinyDecoderHost.LM_OUTPUT, -100, 0.0, null), adapter(kind))) {
      f.randomize(7, p -> 0, p -> 0.3);
      WholeStepCheck.Result r = f.assertGradientsMatch(
          WholeStepCheck.Tolerance.of(1e-5, 1e-7, 1e-6).relativeL2(1e-6).minNormSquared(1e-8));
      System.out.printf("%s on the unfolded tied LM head, float64 central differences: max abs error %.3g,"
          + " max rel L2 error %.3g%n", kind, r.maxError(), r.maxRelativeL2());
    }
  }

  private static AdapterSpec adapter(String kind) {
    return kind.equals("lora") ? Adapters.lora(HEAD, 4, 8) : Adapters.of("bottleneck", HEAD, Map.of("reduction", 2));
  }

  @ParameterizedTest
  @CsvSource({"lora, true", "bottleneck, true", "lora, false", "bottleneck, false"})
  void adaptersOnATiedLmHeadAreInTheGraphsAndTrain(String kind, boolean folded) throws OrtException {
    try (WholeStepCheck f = WholeStepCheck.of(host(folded, TensorType.FLOAT),
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
      System.out.printf("%s on the %s tied LM head: loss %.4f -> %.4f after 60 steps%n", kind,
          folded ? "folded" : "unfolded", t.firstLoss(), last);
      assertTrue(last < 0.8 * t.firstLoss(), kind + " loss " + t.firstLoss() + " -> " + last);
    }
  }
}
