package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.SiteUpdate;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * Adapters on int8 linear sites of the tiny BERT host whose 12 linear layers are int8 ({@link
 * TinyBertHost#int8Graph}), against its float twin whose weights are those int8 weights
 * dequantized ({@link TinyBertHost#dequantizedGraph}): the straight-through gradients beside the
 * float host's, central differences where the int8 loss is smooth, the kinds that refuse int8
 * sites (GRAFT200), and no merged form.
 */
class Int8HostTest {
  private static final long SEED = 5;
  /** The query and value projections of both hosts: {@code MatMul_quant} on the int8 one. */
  private static final String QV = ".*/attention/self/(query|value)/MatMul(_quant)?";

  private static WholeStepCheck check(Graph host, AdapterSpec adapter) throws OrtException {
    return WholeStepCheck.classification(host, adapter);
  }

  /** {@code adapter} with the 2-label mean-pooled head of {@link #check}, trained with {@link Int8Backward#INTEGER}. */
  static GraftSpec integerSpec(AdapterSpec adapter) {
    return new GraftSpec("Tiny", "tiny", List.of(adapter), new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "",
        null), AdamWSpec.DEFAULT, null, List.of(), List.of(), Int8Backward.INTEGER);
  }

  /**
   * LoRA on query and value of both layers, the same parameter values on both hosts: the int8
   * host's gradients (straight through its int8 layers, activations quantized in the forward
   * pass) are the float twin's within a relative L2 error per parameter that the test prints and
   * bounds by 10% (measured: 0.3% to 5.8%, the largest on layer 1's query, whose gradient is the
   * smallest), and the twin's are central differences (float32, h = 1e-2).
   */
  @Test
  void loraGradientsOnTheInt8HostAreTheFloatTwinsStraightThrough() throws OrtException {
    AdapterSpec lora = Adapters.lora(QV, 2, 4);
    try (WholeStepCheck int8 = check(TinyBertHost.int8Graph(SEED), lora);
        WholeStepCheck twin = check(TinyBertHost.dequantizedGraph(SEED, TensorType.FLOAT), lora)) {
      List<String> names = int8.params.stream().map(Parameter::getName).toList();
      assertEquals(twin.params.stream().map(Parameter::getName).toList(), names);
      assertTrue(names.contains("encoder.layer.0.attention.self.query.lora_A"), names.toString());
      assertEquals(twin.values.keySet(), int8.values.keySet());
      twin.values.forEach((k, v) -> assertTrue(java.util.Arrays.equals(v, int8.values.get(k)), k));
      twin.assertGradientsMatch(1e-2, 1e-3, 1e-2);

      double worst = relativeDifferences("int8 vs float twin", int8, twin);
      assertTrue(worst < 0.1, "straight-through gradients differ from the float twin's by " + worst);
      double lossInt8 = int8.loss(Map.of());
      double lossTwin = twin.loss(Map.of());
      assertEquals(lossTwin, lossInt8, 0.02 * Math.abs(lossTwin), "the int8 forward is the twin's up to quantization");
    }
  }

  /**
   * {@link Int8Backward#INTEGER} (the gradient quantized to uint8, an integer product with the int8
   * weight) on the same LoRA and parameter values: its gradients are the float twin's within a
   * relative L2 error per parameter that the test prints and bounds by 10% (measured: 0.3% to 7.8%,
   * against 0.3% to 5.8% for the dequantized backward; the largest on layer 1's query, whose
   * gradient is the smallest), and differ from the dequantized backward's (by the gradient's
   * quantization only) by at most 8% (measured: 0.4% to 4.8%, the largest on layer 0's query,
   * behind the most quantized products); the train graph multiplies by the int8 weights and
   * dequantizes none.
   */
  @Test
  void theIntegerBackwardStaysNearTheFloatTwinsGradients() throws OrtException {
    AdapterSpec lora = Adapters.lora(QV, 2, 4);
    GraftSpec spec = integerSpec(lora);
    try (WholeStepCheck integer = WholeStepCheck.of(TinyBertHost.int8Graph(SEED), spec);
        WholeStepCheck exact = check(TinyBertHost.int8Graph(SEED), lora);
        WholeStepCheck twin = check(TinyBertHost.dequantizedGraph(SEED, TensorType.FLOAT), lora)) {
      List<String> ops = integer.graft.train().getGraph().getNodeList().stream().map(n -> n.getOpType()).toList();
      assertTrue(ops.contains("DynamicQuantizeMatMul") && !ops.contains("DequantizeLinear"), ops.toString());
      assertEquals(twin.values.keySet(), integer.values.keySet());
      integer.values.forEach((k, v) -> assertTrue(java.util.Arrays.equals(v, twin.values.get(k)), k));
      double worstTwin = relativeDifferences("int8 integer backward vs float twin", integer, twin);
      double worstExact = relativeDifferences("int8 integer vs dequantized backward", integer, exact);
      assertTrue(worstTwin < 0.1, "integer-backward gradients differ from the float twin's by " + worstTwin);
      assertTrue(worstExact > 0 && worstExact < 0.08,
          "integer-backward gradients differ from the dequantized backward's by " + worstExact);
    }
  }

  /**
   * {@link Int8Backward#INTEGER} on the float tiny BERT: the backward's products with its frozen
   * float weights are integer too (the weights quantized per column at load), so its LoRA gradients
   * are its exact ones within a relative L2 error the test prints and bounds by 10% (measured: 0.3%
   * to 3.9%); the train graph has one DynamicQuantizeMatMul per frozen product on the gradient's
   * path (9 of the 12: layer 0's query, key and value inputs need none).
   */
  @Test
  void theIntegerBackwardOnAFloatHostStaysNearItsExactGradients() throws OrtException {
    AdapterSpec lora = Adapters.lora(QV, 2, 4);
    GraftSpec spec = integerSpec(lora);
    try (WholeStepCheck integer = WholeStepCheck.of(TinyBertHost.graph(SEED), spec);
        WholeStepCheck exact = check(TinyBertHost.graph(SEED), lora)) {
      assertEquals(9, integer.graft.train().getGraph().getNodeList().stream()
          .filter(n -> n.getOpType().equals("DynamicQuantizeMatMul")).count());
      integer.values.forEach((k, v) -> assertTrue(java.util.Arrays.equals(v, exact.values.get(k)), k));
      double worst = relativeDifferences("float host, integer vs exact backward", integer, exact);
      assertTrue(worst > 0 && worst < 0.1, "integer-backward gradients differ from the exact ones by " + worst);
      assertEquals(exact.loss(Map.of()), integer.loss(Map.of()), 0, "the forward is the same graph");
    }
  }

  /**
   * {@link Int8Backward#INTEGER} where the gradient multiplies by no frozen host weight is GRAFT201:
   * LoRA only on the last linear layer of the float and of the int8 host.
   */
  @Test
  void theIntegerBackwardWithoutFrozenProductsOnTheGradientsPathIsGraft201() {
    record Case(Graph host, String target) {}
    for (Case c : List.of(new Case(TinyBertHost.graph(SEED), ".*/layer.1/output/dense/MatMul"),
        new Case(TinyBertHost.int8Graph(SEED), ".*/layer.1/output/dense/MatMul_quant"))) {
      CompileResult r = GraftCompiler.compile(integerSpec(Adapters.lora(c.target(), 2, 4)), TinyBertHost.host(c.host()));
      assertFalse(r.ok(), c.toString());
      Diagnostic d = r.diagnostics().get(0);
      assertEquals(ErrorCode.INT8_BACKWARD_UNUSED, d.code(), d.message());
      assertTrue(d.message().startsWith("[GRAFT201] int8Backward = INTEGER applies to the backward pass's products with"
          + " frozen host weights") && d.message().contains("the gradient passes none"), d.message());
    }
  }

  /** Prints each LoRA gradient's relative L2 difference between {@code a} and {@code b}; returns the largest. */
  static double relativeDifferences(String what, WholeStepCheck a, WholeStepCheck b) throws OrtException {
    Set<String> outs = new LinkedHashSet<>();
    a.params.forEach(p -> outs.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
    Map<String, double[]> ga = a.run(Map.of(), outs);
    Map<String, double[]> gb = b.run(Map.of(), outs);
    double worst = 0;
    for (String n : outs) {
      double err = 0;
      double norm = 0;
      for (int i = 0; i < ga.get(n).length; i++) {
        err += Math.pow(ga.get(n)[i] - gb.get(n)[i], 2);
        norm += Math.pow(gb.get(n)[i], 2);
      }
      double rel = Math.sqrt(err / norm);
      System.out.printf("%s: %-52s |grad| %.3g, relative L2 difference %.4f%n", what, n, Math.sqrt(norm), rel);
      assertTrue(norm > 1e-12, n);
      worst = Math.max(worst, rel);
    }
    System.out.printf("%s: worst relative L2 difference of the LoRA gradients %.4f%n", what, worst);
    return worst;
  }

  /**
   * LoRA on the last int8 layer (layer 1's output/dense): downstream of it nothing is quantized,
   * so the int8 host's loss is smooth in the LoRA factors and its whole step matches central
   * differences (float32, h = 1e-2), the layer's input and output read through the int8 pattern.
   */
  @Test
  void loraOnTheLastInt8LayerMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck c = check(TinyBertHost.int8Graph(SEED), Adapters.lora(".*/layer.1/output/dense/MatMul_quant", 2, 4))) {
      assertEquals(List.of("encoder.layer.1.output.dense.lora_A", "encoder.layer.1.output.dense.lora_B",
          "classifier.weight", "classifier.bias"), c.params.stream().map(Parameter::getName).toList());
      c.assertGradientsMatch(1e-2, 1e-3, 1e-2);
    }
  }

  /**
   * The linear-site kinds that only read x and add to y (a custom op-DSL kind among them) and the
   * span kind compile on int8 sites and train: the step's loss falls.
   */
  @Test
  void otherKindsThatReadXAndAddToYTrainOnInt8Sites() throws OrtException {
    for (AdapterSpec spec : List.of(
        Adapters.of("lokr", QV, Map.of("rank", 2)),
        Adapters.of("loha", QV, Map.of("rank", 2)),
        Adapters.of("dylora", QV, Map.of("rank", 2)),
        Adapters.of("mixture_lora", QV, Map.of("experts", 2, "rank", 2)),
        Adapters.of("multi_head_routing", QV, Map.of("rank", 2, "heads", 2)),
        Adapters.of("test_gated_lora", QV, Map.of("rank", 2)),
        Adapters.of("vera", QV, Map.of("rank", 4)),
        Adapters.of("ia3", ".*/attention/self/(key|value)/MatMul_quant", Map.of()),
        Adapters.of("parallel", "", Map.of("reduction", 2)))) {
      try (WholeStepCheck c = check(TinyBertHost.int8Graph(SEED), spec)) {
        WholeStepCheck.Training t = c.train(c.batch, c.values, 15, 0.02);
        System.out.printf("int8 tiny host, %s: loss %.4f -> %.4f in 15 steps%n", spec.kind(), t.firstLoss(), t.lastLoss());
        assertTrue(t.lastLoss() < t.firstLoss(), spec.kind() + ": " + t.firstLoss() + " -> " + t.lastLoss());
      }
    }
  }

  /** GRAFT200: DoRA, PiSSA, IA³ on a feed-forward layer and full tuning need the dense weight or the layer's inside. */
  @Test
  void kindsThatNeedTheDenseWeightRefuseInt8SitesWithGraft200() {
    HostModel host = TinyBertHost.host(TinyBertHost.int8Graph(SEED));
    String query = "/encoder/layer.0/attention/self/query/MatMul_quant";
    record Case(AdapterSpec spec, String attribute, String why) {}
    for (Case c : List.of(
        new Case(Adapters.of("lora", query, Map.of("dora", true)), "dora", "DoRA rescales the dense weight"),
        new Case(Adapters.of("lora", query, Map.of("init", "pissa")), "init", "PiSSA initializes from the SVD"),
        new Case(Adapters.of("ia3", ".*/layer.0/output/dense/MatMul_quant", Map.of()), "feedforward",
            "scales the layer's input inside the layer"),
        new Case(Adapters.of("full", query, Map.of()), "target", "an int8 tensor has no gradient"))) {
      CompileResult r = GraftCompiler.compile(new GraftSpec("Tiny", "tiny", List.of(c.spec()),
          new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), AdamWSpec.DEFAULT, null), host);
      assertFalse(r.ok(), c.toString());
      Diagnostic d = r.diagnostics().get(0);
      assertEquals(ErrorCode.INT8_SITE_UNSUPPORTED, d.code(), d.message());
      assertEquals(c.attribute(), d.attribute(), d.message());
      assertTrue(d.message().startsWith("[GRAFT200] ") && d.message().contains("cannot go on the int8 linear site /encoder/layer.")
          && d.message().contains(c.why()), d.message());
    }
  }

  /** The update records of int8 sites: not mergeable, saying why (a merged weight would be a float copy). */
  @Test
  void int8SitesHaveNoMergedFormAndSayWhy() {
    CompiledGraft graft = GraftCompiler.compile(new GraftSpec("Tiny", "tiny", List.of(Adapters.lora(QV, 2, 4)),
        new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), AdamWSpec.DEFAULT, null),
        TinyBertHost.host(TinyBertHost.int8Graph(SEED))).orThrow();
    List<SiteUpdate> records = graft.manifest().getSiteUpdatesList();
    assertEquals(4, records.size());
    for (SiteUpdate u : records) {
      assertFalse(u.getMergeable(), u.toString());
      assertTrue(u.getReason().contains("is int8 (MatMulInteger): a merged weight W + ΔW would be a float copy"),
          u.getReason());
    }
    assertEquals("/encoder/layer.0/attention/self/query/MatMul_quant", records.get(0).getSiteNode());
  }
}
