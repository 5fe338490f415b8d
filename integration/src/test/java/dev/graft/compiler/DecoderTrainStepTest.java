package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.Feed;
import dev.graft.testing.TinyDecoderHost;
import dev.graft.testing.TinyGpt2Host;
import dev.graft.testing.TinyLlamaHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The whole training step of a graft compiled onto the tiny decoder hosts: LoRA (rank 2, alpha
 * 4) on the attention projections of both layers and a 2-label head over the mask-aware mean of
 * {@code last_hidden_state}. Every gradient the step exposes is compared element by element
 * with central differences of its {@code loss}, the AdamW update with a hand computation, and
 * the step, run repeatedly through ONNX Runtime on a fixed synthetic task, must halve the loss.
 */
class DecoderTrainStepTest {
  private static final double LR = 0.1;

  enum Host {
    /** LoRA on the fused qkv projection (its gradient flows back through the three Slices) and c_proj. */
    GPT2(TinyGpt2Host::graph, ".*/attn/(c_attn|c_proj)/MatMul", List.of("attn.c_attn", "attn.c_proj"), "transformer.h."),
    /** LoRA on all four attention projections (q and k gradients flow back through the rotary embedding). */
    LLAMA(TinyLlamaHost::graph, ".*/self_attn/(q_proj|k_proj|v_proj|o_proj)/MatMul",
        List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"), "model.layers.");

    final HostGraph graph;
    final String target;
    final List<String> modules;
    final String layerPrefix;

    Host(HostGraph graph, String target, List<String> modules, String layerPrefix) {
      this.graph = graph;
      this.target = target;
      this.modules = modules;
      this.layerPrefix = layerPrefix;
    }

    List<String> expectedParameters() {
      List<String> names = new ArrayList<>();
      for (int l = 0; l < TinyDecoderHost.LAYERS; l++) {
        for (String m : modules) {
          names.add(layerPrefix + l + "." + m + ".lora_A");
          names.add(layerPrefix + l + "." + m + ".lora_B");
        }
      }
      names.add("classifier.weight");
      names.add("classifier.bias");
      return names;
    }
  }

  /** A host graph builder: seed, LM output name, element type. */
  interface HostGraph {
    Graph apply(long seed, String lmOutput, int elem);
  }

  /** Token ids, attention mask and labels of one batch. */
  record Batch(long[] ids, long[] mask, long[] labels) {
    long[] shape() {
      return new long[] {labels.length, ids.length / labels.length};
    }

    /** The feeds; the causal-LM step takes [batch, sequence] labels: the runtime feeds input_ids (shifted in the graph). */
    Map<String, Feed> feeds(boolean causalLm) {
      return Map.of("input_ids", Feed.longs(ids, shape()), "attention_mask", Feed.longs(mask, shape()),
          "labels", causalLm ? Feed.longs(ids, shape()) : Feed.longs(labels, labels.length));
    }
  }

  /** Two sequences of 6, the second right-padded by 2. */
  private static final Batch SMALL = new Batch(
      new long[] {3, 17, 22, 8, 1, 5, 9, 30, 4, 11, 0, 0},
      new long[] {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
      new long[] {1, 0});

  private static final Map<String, WholeStepCheck> FIXTURES = new HashMap<>();

  private static synchronized WholeStepCheck fixture(Host host, int elem) throws OrtException {
    return fixture(host, elem, false);
  }

  /** The step of a graft compiled onto a FLOAT or DOUBLE host, fed {@link #SMALL} at lr {@value #LR}. */
  private static synchronized WholeStepCheck fixture(Host host, int elem, boolean causalLm) throws OrtException {
    String key = host + "/" + elem + (causalLm ? "/lm" : "");
    WholeStepCheck f = FIXTURES.get(key);
    if (f == null) {
      TaskSpec task = causalLm
          ? new CausalLmSpec(TinyDecoderHost.LM_OUTPUT, -100, 0.0, null)
          : new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null);
      f = WholeStepCheck.of(host.graph.apply(DecoderHostsTest.SEED, TinyDecoderHost.LM_OUTPUT, elem), task,
          Adapters.lora(host.target, 2, 4));
      f.randomize(7, p -> 0, p -> switch (p.getRole()) {
        case LORA_A -> 0.5;
        case LORA_B -> 0.3; // non-zero, or A's gradient would be exactly zero
        case HEAD_WEIGHT -> 0.5;
        default -> 0.1;
      });
      f.batch.clear();
      f.batch.putAll(SMALL.feeds(causalLm));
      f.learningRate = LR;
      FIXTURES.put(key, f);
    }
    return f;
  }

  private static WholeStepCheck fixture(Host host) throws OrtException {
    return fixture(host, TensorType.FLOAT);
  }

  @AfterAll
  static void close() throws OrtException {
    for (WholeStepCheck f : FIXTURES.values()) {
      f.close();
    }
    FIXTURES.clear();
  }

  @ParameterizedTest
  @EnumSource(Host.class)
  void stepHasTheExpectedParametersAndOutputs(Host host) throws OrtException {
    WholeStepCheck f = fixture(host);
    assertEquals(host.expectedParameters(), f.params.stream().map(Parameter::getName).toList());
    List<String> frozen = f.graft.manifest().getHostInitializersList();
    assertTrue(frozen.contains(host == Host.GPT2 ? "transformer.wte.weight" : "model.embed_tokens.weight"), frozen.toString());
    // The LM head is not on the classification path: neither graph keeps it.
    assertFalse(frozen.contains(TinyLlamaHost.LM_HEAD_WEIGHT), frozen.toString());
    Set<String> outs = f.trainOutputs();
    for (Parameter p : f.params) {
      String n = p.getName();
      assertTrue(outs.containsAll(List.of(n + ".grad", n + ".next", n + ".adam_m.next", n + ".adam_v.next")), n);
    }
    double loss = f.run(Map.of(), Set.of("loss")).get("loss")[0];
    assertTrue(loss > 0.05 && loss < 5, "a plausible 2-class cross-entropy: " + loss);
  }

  /**
   * Autodiff differentiates exactly the nodes between a LoRA parameter and the loss: the
   * backward pass goes through the causal mask's Where (GPT-2), the rotary Mul/Slice/Neg/Concat
   * (Llama) and the qkv Slices, but never into the constant subgraphs (positions from Range,
   * causal buffer, Trilu mask, Sin/Cos tables) nor upstream of layer 0's first projection.
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void onlyNodesOnAPathFromAParameterToTheLossAreDifferentiated(Host host) throws OrtException {
    WholeStepCheck f = fixture(host);
    List<String> names = f.graft.train().getGraph().getNodeList().stream().map(n -> n.getName()).toList();
    Set<String> differentiated = new java.util.TreeSet<>();
    for (String n : names) {
      if (!n.startsWith("/grad/") && !n.startsWith("/adamw/")
          && names.stream().anyMatch(b -> b.startsWith("/grad" + n + "/"))) {
        differentiated.add(n);
      }
    }
    List<String> expected;
    List<String> constant;
    if (host == Host.GPT2) {
      expected = List.of("/transformer/h.0/attn/Where", "/transformer/h.0/attn/Slice", "/transformer/h.0/attn/Slice_1",
          "/transformer/h.0/attn/Slice_2",
          // LayerNorms and tanh-GELUs: fused at import, named after their last node.
          "/transformer/h.0/mlp/act/Mul_3",
          "/transformer/h.1/ln_1/Add_1", "/transformer/ln_f/Add_1", "/transformer/h.1/attn/Softmax");
      constant = List.of("/transformer/Range", "/transformer/wpe/Gather", "/transformer/wte/Gather", "/transformer/Add",
          "/transformer/h.0/attn/Slice_3", "/transformer/Mul", "/transformer/h.0/ln_1/Add_1", "/transformer/h.0/attn/c_attn/MatMul");
    } else {
      expected = List.of("/model/layers.0/self_attn/Neg", "/model/layers.0/self_attn/Concat",
          "/model/layers.0/self_attn/Mul_rope", "/model/layers.0/self_attn/Slice_1_1", "/model/layers.0/mlp/act_fn/Sigmoid",
          // RMSNorms: fused at import, named after their last node.
          "/model/layers.1/input_layernorm/Mul_1", "/model/norm/Mul_1");
      constant = List.of("/model/Range", "/model/rotary_emb/MatMul", "/model/rotary_emb/Cos", "/model/rotary_emb/Sin",
          "/model/Unsqueeze_1", "/model/Trilu", "/model/ConstantOfShape", "/model/Where", "/model/embed_tokens/Gather",
          "/model/layers.0/input_layernorm/Mul_1", "/model/layers.0/self_attn/q_proj/MatMul");
    }
    for (String n : expected) {
      assertTrue(names.contains(n), n + " is in the step");
      assertTrue(differentiated.contains(n), n + " is differentiated");
    }
    for (String n : constant) {
      assertTrue(names.contains(n), n + " is in the step");
      assertFalse(differentiated.contains(n), n + " is not differentiated");
    }
  }

  private static Set<String> gradientOutputs(WholeStepCheck f) {
    Set<String> out = new LinkedHashSet<>();
    f.params.forEach(p -> out.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
    return out;
  }

  /**
   * Every element of every gradient against central differences of the loss, on the host built
   * in float64 (ORT runs every op of both hosts and of the step in double), h = 1e-5. Pass when
   * |analytic − numeric| ≤ 1e-7 + 1e-6·|numeric| element-wise and the relative L2 error per
   * parameter is ≤ 1e-6 (measured: ≤ 3e-8 and ≤ 2e-8). (In float32 with h = 1e-2 the O(h²) truncation error alone reaches
   * 3e-2 on layer 0 of GPT-2, too coarse to tell a wrong rule from curvature.)
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void everyGradientMatchesCentralDifferencesInFloat64(Host host) throws OrtException {
    checkCentralDifferences(host + " classification", fixture(host, TensorType.DOUBLE));
  }

  /**
   * The causal-LM loss (next token of {@code input_ids}, padding ignored) on the host's tied
   * (GPT-2) or untied (Llama) vocabulary logits: the same float64 check, same tolerances.
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void causalLmGradientsMatchCentralDifferencesInFloat64(Host host) throws OrtException {
    WholeStepCheck f = fixture(host, TensorType.DOUBLE, true);
    assertTrue(f.params.stream().allMatch(p -> p.getName().contains(".lora_")), "LoRA only, no head");
    checkCentralDifferences(host + " causal LM", f);
  }

  private static void checkCentralDifferences(String host, WholeStepCheck f) throws OrtException {
    WholeStepCheck.Result r = f.assertGradientsMatch(
        WholeStepCheck.Tolerance.of(1e-5, 1e-7, 1e-6).relativeL2(1e-6).minNormSquared(1e-6));
    System.out.printf("%s float64 central differences: max abs error %.3g, max rel L2 error %.3g%s%n",
        host, r.maxError(), r.maxRelativeL2(), r.stats());
  }

  /**
   * The float32 step (what users run) computes the same gradients as the float64 one checked
   * above: relative L2 difference ≤ 3e-5 per parameter (float32 rounding through two layers;
   * measured ≤ 3e-6).
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void float32GradientsMatchFloat64(Host host) throws OrtException {
    WholeStepCheck single = fixture(host);
    WholeStepCheck dbl = fixture(host, TensorType.DOUBLE);
    Map<String, double[]> g32 = single.run(Map.of(), gradientOutputs(single));
    Map<String, double[]> g64 = dbl.run(Map.of(), gradientOutputs(dbl));
    StringBuilder stats = new StringBuilder();
    double worst = 0;
    for (String o : gradientOutputs(single)) {
      double[] a = g32.get(o);
      double[] b = g64.get(o);
      double errSq = 0;
      double normSq = 0;
      for (int i = 0; i < a.length; i++) {
        errSq += (a[i] - b[i]) * (a[i] - b[i]);
        normSq += b[i] * b[i];
      }
      double rel = Math.sqrt(errSq / normSq);
      worst = Math.max(worst, rel);
      stats.append(String.format("%n  %s: rel L2 difference %.3g", o, rel));
    }
    System.out.printf("%s float32 vs float64 gradients: max rel L2 difference %.3g%n", host, worst);
    assertTrue(worst <= 3e-5, stats.toString());
  }

  /**
   * With zero moments at step 1, m̂ = g and v̂ = g², so p' = p − lr·(g/(|g|+ε) + λ·p) for
   * weights and p − lr·g/(|g|+ε) for the head bias. Tolerance 2e-6 (float32 rounding of the
   * bias corrections is ≈ 1e-5 relative on the ≈ lr-sized update). Checked on the float32
   * step and on the float64 one (whose update is float64 throughout).
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void adamWUpdateMatchesHandComputation(Host host) throws OrtException {
    for (int elem : new int[] {TensorType.FLOAT, TensorType.DOUBLE}) {
      adamWUpdateMatchesHandComputation(fixture(host, elem), elem);
    }
  }

  private static void adamWUpdateMatchesHandComputation(WholeStepCheck f, int elem) throws OrtException {
    for (String scalar : List.of("step", "learning_rate")) {
      assertEquals(elem == TensorType.DOUBLE ? OnnxJavaType.DOUBLE : OnnxJavaType.FLOAT, f.trainInputType(scalar), scalar);
    }
    f.assertAdamWFirstStep(2e-6);
  }

  /**
   * A fixed synthetic task: 16 sequences of 5–8 tokens (right-padded to 8) from ids 1–31,
   * label 1 when token 5 occurs. Half contain it, at a seeded position.
   */
  static Batch containsFive() {
    Random r = new Random(11);
    int n = 16;
    int len = 8;
    long[] ids = new long[n * len];
    long[] mask = new long[n * len];
    long[] labels = new long[n];
    for (int s = 0; s < n; s++) {
      int valid = 5 + r.nextInt(4);
      labels[s] = s % 2;
      for (int t = 0; t < valid; t++) {
        long id;
        do {
          id = 1 + r.nextInt(TinyDecoderHost.VOCAB - 1);
        } while (id == 5);
        ids[s * len + t] = id;
        mask[s * len + t] = 1;
      }
      if (labels[s] == 1) {
        ids[s * len + r.nextInt(valid)] = 5;
      }
    }
    return new Batch(ids, mask, labels);
  }

  /**
   * Causal LM with LoRA alone (no head): 8 copies of one fixed 8-token sequence, 120 full-batch
   * steps at lr 0.02. The next-token loss of the random host starts high (measured 4.9 and 4.8,
   * above ln 32) and must fall to at most half (measured: 0.07 and 0.84).
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void causalLmTrainingHalvesTheLoss(Host host) throws OrtException {
    WholeStepCheck f = fixture(host, TensorType.FLOAT, true);
    long[] sequence = {3, 17, 22, 8, 1, 5, 9, 30};
    long[] ids = new long[8 * sequence.length];
    long[] mask = new long[ids.length];
    for (int b = 0; b < 8; b++) {
      System.arraycopy(sequence, 0, ids, b * sequence.length, sequence.length);
    }
    java.util.Arrays.fill(mask, 1);
    Batch batch = new Batch(ids, mask, new long[8]);
    WholeStepCheck.Training t = f.train(batch.feeds(true), f.initialValues(3), 120, 0.02);
    double first = t.firstLoss();
    double finalLoss = f.run(batch.feeds(true), t.state(), 121, 0, Set.of("loss")).get("loss")[0];
    System.out.printf("%s causal LM training: loss %.4f -> %.4f after 120 steps%n", host, first, finalLoss);
    assertTrue(first > 2.0, "initial next-token loss of an untrained host: " + first);
    assertTrue(finalLoss <= first / 2, "loss " + first + " -> " + finalLoss);
  }

  /**
   * Trains from the manifest's initializers (LoRA A Kaiming-uniform, B zero, head N(0, 0.02²),
   * seeded) with the compiled step for 60 full-batch steps at lr 0.01: the loss must fall to at
   * most half its initial value, every prediction must be right, and LoRA B must have left zero.
   */
  @ParameterizedTest
  @EnumSource(Host.class)
  void trainingOnASyntheticTaskHalvesTheLoss(Host host) throws OrtException {
    WholeStepCheck f = fixture(host);
    Batch batch = containsFive();
    int steps = 60;
    WholeStepCheck.Training t = f.train(batch.feeds(false), f.initialValues(3), steps, 0.01);
    double first = t.firstLoss();
    Map<String, double[]> last = f.run(batch.feeds(false), t.state(), steps + 1, 0, Set.of("loss", "logits"));
    double finalLoss = last.get("loss")[0];
    double[] logits = last.get("logits");
    int correct = 0;
    for (int b = 0; b < batch.labels().length; b++) {
      if ((logits[2 * b + 1] > logits[2 * b] ? 1 : 0) == batch.labels()[b]) {
        correct++;
      }
    }
    System.out.printf("%s training: loss %.4f -> %.4f after %d steps, %d/%d right%n",
        host, first, finalLoss, steps, correct, batch.labels().length);
    assertEquals(Math.log(2), first, 0.05, "the initial loss is near ln 2 (B = 0, small head)");
    assertTrue(finalLoss <= first / 2, "loss " + first + " -> " + finalLoss);
    assertEquals(batch.labels().length, correct, "training accuracy");
    for (Parameter p : f.params) {
      if (p.getRole() == ParameterRole.LORA_B) {
        double norm = 0;
        for (double x : t.state().values().get(p.getName())) {
          norm += x * x;
        }
        assertTrue(Math.sqrt(norm) > 1e-3, p.getName() + " trained");
      }
    }
  }
}
