package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.Feed;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.TinyCausalHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.dsl.Graft;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.MultiLabelSpec;
import dev.graft.compiler.spec.RegressionSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.compiler.spec.TokenClassificationSpec;
import dev.graft.spec.manifest.Loss;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The losses of every task, through the whole compiled training step on tiny hosts: each
 * gradient against central differences of the step's {@code loss}, and the loss value against a
 * hand computation in Java from the step's own logits/predictions output on the same inputs.
 */
class TaskLossTest {
  private static final long[] BS = {3, 5};
  private static final long[] INPUT_IDS = {3, 17, 42, 8, 1, 5, 9, 33, 0, 0, 11, 12, 13, 14, 15};
  private static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1};
  private static final long[] TOKEN_TYPES = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  private static final AdapterSpec LORA = Adapters.lora(".*/(query|value)/MatMul", 2, 4);

  /**
   * The float32 step of {@link #LORA} and {@code task} on {@code hostGraph}, fed a 3 × 5 batch,
   * {@code labels}, step 1 and lr 0.1, with seeded parameter values.
   */
  private static WholeStepCheck fixture(Graph hostGraph, TaskSpec task, Feed labels) throws OrtException {
    WholeStepCheck f = WholeStepCheck.of(hostGraph, task, LORA);
    f.randomize(11, p -> 0, p -> switch (p.getRole()) {
      case LORA_A -> 0.5;
      case LORA_B -> 0.3;
      case HEAD_WEIGHT -> 0.5;
      default -> 0.1;
    });
    f.batch.clear();
    f.batch.put("input_ids", Feed.longs(INPUT_IDS, BS));
    f.batch.put("attention_mask", Feed.longs(MASK, BS));
    f.batch.put("token_type_ids", Feed.longs(TOKEN_TYPES, BS));
    f.batch.put(f.graft.manifest().getTrain().getLabels(), labels);
    f.learningRate = 0.1;
    return f;
  }

  /** The step's loss and its task output ({@code logits} or {@code predictions}). */
  private static Map<String, double[]> forward(WholeStepCheck f) throws OrtException {
    return f.run(Map.of(), Set.of("loss", f.graft.manifest().getLogits()));
  }

  /**
   * Every element of every gradient against central differences of the loss in float32, h =
   * 1e-2 (divided by the exact float32 difference of the perturbed values). Pass when |analytic
   * − numeric| ≤ 1e-3 + 1e-2·|numeric| element-wise and the relative L2 error per parameter is ≤
   * 1e-2.
   */
  private static void checkGradients(WholeStepCheck f) throws OrtException {
    WholeStepCheck.Result r = f.assertGradientsMatch(
        WholeStepCheck.Tolerance.of(1e-2, 1e-3, 1e-2).relativeL2(1e-2).minNormSquared(1e-8));
    System.out.printf("%s: max |analytic - numeric| %.3g%s%n", f.graft.manifest().getTask().getLoss(), r.maxError(), r.stats());
  }

  /** −log softmax(z)[y] and −mean_c log softmax(z)[c] of one row, in double. */
  private static double[] crossEntropy(double[] z, int offset, int classes, long label) {
    double max = Double.NEGATIVE_INFINITY;
    for (int c = 0; c < classes; c++) {
      max = Math.max(max, z[offset + c]);
    }
    double sum = 0;
    for (int c = 0; c < classes; c++) {
      sum += Math.exp(z[offset + c] - max);
    }
    double lse = max + Math.log(sum);
    double uniform = 0;
    for (int c = 0; c < classes; c++) {
      uniform += lse - z[offset + c];
    }
    return new double[] {label < 0 ? 0 : lse - z[offset + (int) label], uniform / classes};
  }

  // ---------------------------------------------------------------- classification options

  @Test
  void classificationWithIgnoreIndexAndLabelSmoothing() throws OrtException {
    long[] labels = {2, -1, 0};
    double eps = 0.1;
    ClassificationSpec task = new ClassificationSpec(3, ClassificationSpec.Pooling.MEAN, "", -1, eps, null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.longs(labels, 3))) {
      assertEquals(Loss.SOFTMAX_CROSS_ENTROPY, f.graft.manifest().getTask().getLoss());
      assertEquals(-1, f.graft.manifest().getTask().getIgnoreIndex());
      assertEquals(0.1, f.graft.manifest().getTask().getLabelSmoothing());
      Map<String, double[]> out = forward(f);
      double[] z = out.get("logits");
      double sum = 0;
      for (int b : new int[] {0, 2}) {
        double[] ce = crossEntropy(z, 3 * b, 3, labels[b]);
        sum += (1 - eps) * ce[0] + eps * ce[1];
      }
      assertEquals(sum / 2, out.get("loss")[0], 1e-5, "mean over the 2 counted examples");
      checkGradients(f);
    }
  }

  @Test
  void classificationWithEveryLabelIgnoredHasZeroLossAndGradients() throws OrtException {
    ClassificationSpec task = new ClassificationSpec(3, ClassificationSpec.Pooling.FIRST_TOKEN, "", -100, 0.2, null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.longs(new long[] {-100, -100, -100}, 3))) {
      assertEquals(0.0, forward(f).get("loss")[0], 0.0);
      Set<String> grads = new LinkedHashSet<>();
      f.params.forEach(p -> grads.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
      f.run(Map.of(), grads).forEach((name, g) -> {
        for (double x : g) {
          assertEquals(0.0, x, 0.0, name);
        }
      });
    }
  }

  @Test
  void defaultClassificationIsPlainMeanCrossEntropy() throws OrtException {
    long[] labels = {1, 0, 2};
    ClassificationSpec task = new ClassificationSpec(3, ClassificationSpec.Pooling.MEAN, "", null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.longs(labels, 3))) {
      Map<String, double[]> out = forward(f);
      double sum = 0;
      for (int b = 0; b < 3; b++) {
        sum += crossEntropy(out.get("logits"), 3 * b, 3, labels[b])[0];
      }
      assertEquals(sum / 3, out.get("loss")[0], 1e-5);
    }
  }

  // ---------------------------------------------------------------- regression

  @Test
  void regressionIsMeanSquaredError() throws OrtException {
    float[] targets = {0.5f, -1f, 2f, 0f, -0.25f, 1.5f};
    RegressionSpec task = new RegressionSpec(2, ClassificationSpec.Pooling.MEAN, "", null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.floats(targets, 3, 2))) {
      assertEquals("targets", f.graft.manifest().getTrain().getLabels());
      assertEquals("predictions", f.graft.manifest().getLogits());
      assertEquals(2, f.graft.manifest().getHead().getNumLabels());
      Map<String, double[]> out = forward(f);
      double[] y = out.get("predictions");
      assertEquals(6, y.length);
      double sum = 0;
      for (int i = 0; i < 6; i++) {
        sum += (y[i] - (double) targets[i]) * (y[i] - (double) targets[i]);
      }
      assertEquals(sum / 6, out.get("loss")[0], 1e-5 * Math.max(1, sum / 6));
      checkGradients(f);
    }
  }

  // ---------------------------------------------------------------- multi-label

  @Test
  void multiLabelIsBinaryCrossEntropyWithLogits() throws OrtException {
    float[] targets = {1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1};
    MultiLabelSpec task = new MultiLabelSpec(4, ClassificationSpec.Pooling.FIRST_TOKEN, "", null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.floats(targets, 3, 4))) {
      assertEquals(Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS, f.graft.manifest().getTask().getLoss());
      Map<String, double[]> out = forward(f);
      double[] z = out.get("logits");
      double sum = 0;
      for (int i = 0; i < 12; i++) {
        double p = 1 / (1 + Math.exp(-z[i]));
        sum += -(targets[i] * Math.log(p) + (1 - targets[i]) * Math.log(1 - p));
      }
      assertEquals(sum / 12, out.get("loss")[0], 1e-5);
      checkGradients(f);
    }
  }

  @Test
  void binaryCrossEntropyIsStableForLargeLogits() throws OrtException {
    float[] targets = {1, 0, 0, 1, 0, 1};
    MultiLabelSpec task = new MultiLabelSpec(2, ClassificationSpec.Pooling.MEAN, "", null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.floats(targets, 3, 2))) {
      // Bias ±200 (weights zero): logits ±200, where exp(−z) of the naive form overflows float32.
      double[] w = new double[f.values.get("classifier.weight").length];
      Map<String, double[]> out = f.run(Map.of("classifier.weight", w, "classifier.bias", new double[] {200, -200}),
          Set.of("loss", "classifier.bias.grad"));
      // Row targets (1,0) cost 0; (0,1) costs 400; (0,1) → 400: (0 + 400 + 400 + 0 + 400 + 0... per element.
      double expected = 0;
      for (int i = 0; i < 6; i++) {
        double z = i % 2 == 0 ? 200 : -200;
        expected += Math.max(z, 0) - z * targets[i] + Math.log1p(Math.exp(-Math.abs(z)));
      }
      assertEquals(expected / 6, out.get("loss")[0], 1e-3);
      for (double g : out.get("classifier.bias.grad")) {
        assertTrue(Double.isFinite(g), "finite gradient: " + g);
      }
    }
  }

  // ---------------------------------------------------------------- causal LM

  /** The hand-computed causal LM loss: mean over (b, t) whose next token counts of −log p(next). */
  private static double causalLmLoss(double[] logits, long[] labels, long[] mask, long ignore, int vocab) {
    double sum = 0;
    int counted = 0;
    for (int b = 0; b < BS[0]; b++) {
      for (int t = 0; t + 1 < BS[1]; t++) {
        int next = (int) (b * BS[1] + t + 1);
        if (mask[next] == 0 || labels[next] == ignore) {
          continue;
        }
        sum += crossEntropy(logits, (int) ((b * BS[1] + t) * vocab), vocab, labels[next])[0];
        counted++;
      }
    }
    return counted == 0 ? 0 : sum / counted;
  }

  @Test
  void causalLmLossShiftsLabelsAndSkipsPadding() throws OrtException {
    CausalLmSpec task = new CausalLmSpec("", -100, 0.0, null);
    try (WholeStepCheck f = fixture(TinyCausalHost.graph(2024), task, Feed.longs(INPUT_IDS, BS))) {
      assertEquals(List.of(), f.params.stream().filter(p -> !p.getName().contains("lora")).toList(), "no head");
      assertEquals(Loss.CAUSAL_LM_CROSS_ENTROPY, f.graft.manifest().getTask().getLoss());
      assertEquals(TinyCausalHost.VOCAB, f.graft.manifest().getTask().getNumOutputs());
      assertFalse(f.graft.manifest().hasHead());
      Map<String, double[]> out = forward(f);
      assertEquals(3 * 5 * TinyCausalHost.VOCAB, out.get("logits").length);
      // 4 + 2 + 4 counted positions (row 1's last two tokens are padding).
      double expected = causalLmLoss(out.get("logits"), INPUT_IDS, MASK, -100, TinyCausalHost.VOCAB);
      assertEquals(expected, out.get("loss")[0], 1e-5);
      // Not the unshifted loss: a graph without the shift would give another value.
      double unshifted = 0;
      for (int i = 0; i < 15; i++) {
        unshifted += crossEntropy(out.get("logits"), i * TinyCausalHost.VOCAB, TinyCausalHost.VOCAB, INPUT_IDS[i])[0];
      }
      assertTrue(Math.abs(unshifted / 15 - expected) > 1e-2, "shift matters: " + unshifted / 15 + " vs " + expected);
      checkGradients(f);
    }
  }

  @Test
  void causalLmWithExplicitLabelsIgnoresTheIgnoreIndex() throws OrtException {
    long[] labels = INPUT_IDS.clone();
    labels[1] = -7;
    labels[2] = -7;
    labels[12] = 49;
    CausalLmSpec task = new CausalLmSpec("logits", -7, 0.0, null);
    try (WholeStepCheck f = fixture(TinyCausalHost.graph(2024), task, Feed.longs(labels, BS))) {
      Map<String, double[]> out = forward(f);
      double expected = causalLmLoss(out.get("logits"), labels, MASK, -7, TinyCausalHost.VOCAB);
      assertEquals(expected, out.get("loss")[0], 1e-5);
      checkGradients(f);
    }
    long[] none = new long[15];
    java.util.Arrays.fill(none, -100);
    try (WholeStepCheck f = fixture(TinyCausalHost.graph(2024), new CausalLmSpec("", -100, 0.1, null), Feed.longs(none, BS))) {
      assertEquals(0.0, forward(f).get("loss")[0], 0.0, "every label ignored: loss 0, not NaN");
    }
  }

  // ---------------------------------------------------------------- token classification

  @Test
  void tokenClassificationIsCrossEntropyPerTokenWithoutIgnoredOrPaddedTokens() throws OrtException {
    // Row 0: token 2 ignored; row 1: tokens 3 and 4 are padding (mask 0) with real classes.
    long[] labels = {0, 2, -100, 1, 1, 2, 0, 1, 2, 1, 0, 0, 1, 2, 2};
    TokenClassificationSpec task = new TokenClassificationSpec(3, "", -100, null);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), task, Feed.longs(labels, BS))) {
      assertEquals(Loss.TOKEN_CROSS_ENTROPY, f.graft.manifest().getTask().getLoss());
      assertEquals(3, f.graft.manifest().getHead().getNumLabels());
      assertEquals(-100, f.graft.manifest().getTask().getIgnoreIndex());
      assertEquals(List.of("base_model.model.classifier.weight", "base_model.model.classifier.bias"),
          f.params.stream().filter(p -> p.getSite().equals("classifier")).map(p -> p.getSaveKey()).toList());
      Map<String, double[]> out = forward(f);
      double[] z = out.get("logits");
      assertEquals(3 * 5 * 3, z.length, "[batch, sequence, labels]");
      double sum = 0;
      int counted = 0;
      double unmasked = 0;
      int all = 0;
      for (int i = 0; i < 15; i++) {
        if (labels[i] == -100) {
          continue;
        }
        double ce = crossEntropy(z, i * 3, 3, labels[i])[0];
        unmasked += ce;
        all++;
        if (MASK[i] == 1) {
          sum += ce;
          counted++;
        }
      }
      assertEquals(12, counted);
      assertEquals(sum / counted, out.get("loss")[0], 1e-5);
      assertTrue(Math.abs(unmasked / all - sum / counted) > 1e-3, "the mask matters: " + unmasked / all + " vs " + sum / counted);
      checkGradients(f);
    }
    long[] none = new long[15];
    java.util.Arrays.fill(none, 4);
    try (WholeStepCheck f = fixture(TinyBertHost.graph(2024), new TokenClassificationSpec(3, "", 4, null),
        Feed.longs(none, BS))) {
      assertEquals(0.0, forward(f).get("loss")[0], 0.0, "every label ignored: loss 0, not NaN");
    }
  }

  @Test
  void tokenClassificationStepMatchesFiniteDifferencesOnTheDefaultBatch() throws OrtException {
    // WholeStepCheck's own 2 × 5 batch and TOKEN_LABELS (one ignored, the padding labelled but masked).
    try (WholeStepCheck f = WholeStepCheck.of(TinyBertHost.graph(7), new TokenClassificationSpec(2, "", -100, null),
        Adapters.lora(".*/(query|key|value)/MatMul", 2, 4))) {
      checkGradients(f);
    }
  }

  @Test
  void invalidTokenClassificationIsReportedWithItsCodes() {
    HostModel bert = TinyBertHost.host(1);
    assertEquals(List.of(ErrorCode.HEAD_LABELS_OUT_OF_RANGE.format(1)),
        codes(spec(new TokenClassificationSpec(1, "", -100, null), List.of(LORA)), bert));
    assertEquals(List.of(ErrorCode.IGNORE_INDEX_IS_A_CLASS.format(0L, 3)),
        codes(spec(new TokenClassificationSpec(3, "", 0, null), List.of(LORA)), bert));
    Graph g = TinyBertHost.graph(1);
    g.opTo("pooled", "/pool/ReduceMean", "ReduceMean", List.of("last_hidden_state"),
        dev.graft.compiler.ir.Node.attr("axes", List.of(1L)), dev.graft.compiler.ir.Node.attr("keepdims", 0L));
    g.outputs().add("pooled");
    dev.graft.compiler.ir.ShapeInference.run(g);
    List<String> shape = codes(spec(new TokenClassificationSpec(3, "pooled", -100, null), List.of(LORA)),
        new HostModel("tiny", OnnxExport.write(g, "tiny"), "sha"));
    assertEquals(1, shape.size());
    assertTrue(shape.get(0).startsWith("[" + ErrorCode.HEAD_OUTPUT_SHAPE.code() + "]"), shape.toString());
  }

  // ---------------------------------------------------------------- validation

  private static List<String> codes(GraftSpec spec, HostModel host) {
    return GraftCompiler.compile(spec, host).diagnostics().stream().map(Diagnostic::message).toList();
  }

  private static GraftSpec spec(TaskSpec task, List<AdapterSpec> loras) {
    return new GraftSpec("Tiny", "tiny", loras, task, AdamWSpec.DEFAULT, null);
  }

  @Test
  void invalidTasksAreReportedWithTheirCodes() {
    HostModel bert = TinyBertHost.host(1);
    HostModel causal = TinyCausalHost.host(1);
    assertEquals(List.of(ErrorCode.LABEL_SMOOTHING_OUT_OF_RANGE.format(1.0)),
        codes(spec(new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", -100, 1.0, null), List.of(LORA)), bert));
    assertEquals(List.of(ErrorCode.IGNORE_INDEX_IS_A_CLASS.format(1L, 2)),
        codes(spec(new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", 1, 0, null), List.of(LORA)), bert));
    assertEquals(List.of(ErrorCode.TASK_SIZE_OUT_OF_RANGE.format("regression", "target", 0)),
        codes(spec(new RegressionSpec(0, ClassificationSpec.Pooling.MEAN, "", null), List.of(LORA)), bert));
    assertEquals(List.of(ErrorCode.TASK_SIZE_OUT_OF_RANGE.format("multi-label classification", "label", 0)),
        codes(spec(new MultiLabelSpec(0, ClassificationSpec.Pooling.MEAN, "", null), List.of(LORA)), bert));
    assertEquals(List.of(ErrorCode.LABEL_SMOOTHING_OUT_OF_RANGE.format(-0.5)),
        codes(spec(new CausalLmSpec("", -100, -0.5, null), List.of(LORA)), causal));
    assertEquals(List.of(ErrorCode.NOTHING_TO_TRAIN.format("Tiny", "the causal LM loss")),
        codes(spec(new CausalLmSpec("", -100, 0, null), List.of()), causal));
    List<String> missing = codes(spec(new CausalLmSpec("missing", -100, 0, null), List.of(LORA)), causal);
    assertEquals(1, missing.size());
    assertTrue(missing.get(0).startsWith("[GRAFT021]"), missing.toString());
  }

  @Test
  void causalLmNeedsVocabularyLogitsAndInputIds() {
    Graph g = TinyCausalHost.graph(1);
    // A rank-2 output: not [batch, sequence, vocab].
    g.opTo("pooled", "/pool/ReduceMean", "ReduceMean", List.of("logits"),
        dev.graft.compiler.ir.Node.attr("axes", List.of(1L)), dev.graft.compiler.ir.Node.attr("keepdims", 0L));
    g.outputs().add("pooled");
    dev.graft.compiler.ir.ShapeInference.run(g);
    HostModel host = new HostModel("tiny", OnnxExport.write(g, "tiny"), "sha");
    List<String> shape = codes(spec(new CausalLmSpec("pooled", -100, 0, null), List.of(LORA)), host);
    assertEquals(1, shape.size());
    assertTrue(shape.get(0).startsWith("[GRAFT027] host output 'pooled' must be vocabulary logits"), shape.toString());

    Graph renamed = TinyCausalHost.graph(1);
    HostModel noIds = new HostModel("tiny", OnnxExport.write(renamed, "tiny").toBuilder()
        .setGraph(OnnxExport.write(renamed, "tiny").getGraph().toBuilder()
            .setInput(0, OnnxExport.write(renamed, "tiny").getGraph().getInput(0).toBuilder().setName("tokens"))
            .build())
        .build(), "sha");
    List<String> ids = codes(spec(new CausalLmSpec("", -100, 0, null), List.of(LORA)), noIds);
    assertTrue(ids.stream().anyMatch(m -> m.startsWith("[GRAFT028]")), ids.toString());
  }

  @Test
  void builderDeclaresEveryTask() {
    HostModel bert = TinyBertHost.host(3);
    GraftSpec c = Graft.host(bert).lora(".*query/MatMul")
        .classification(3, h -> h.ignoreIndex(-1).labelSmoothing(0.1)).spec();
    assertEquals(new ClassificationSpec(3, ClassificationSpec.Pooling.MEAN, "", -1, 0.1, null), c.task());
    assertEquals(new RegressionSpec(2, ClassificationSpec.Pooling.FIRST_TOKEN, "", null),
        Graft.host(bert).regression(2, h -> h.pooling(ClassificationSpec.Pooling.FIRST_TOKEN)).spec().task());
    assertEquals(new MultiLabelSpec(4, ClassificationSpec.Pooling.MEAN, "", null),
        Graft.host(bert).multiLabel(4).spec().task());
    CompiledGraft lm = Graft.host(TinyCausalHost.host(3)).lora(".*value/MatMul")
        .causalLm(o -> o.output("logits").ignoreIndex(-5)).compile();
    assertEquals(Loss.CAUSAL_LM_CROSS_ENTROPY, lm.manifest().getTask().getLoss());
    assertEquals(-5, lm.manifest().getTask().getIgnoreIndex());
    assertEquals("logits", lm.manifest().getTask().getHostOutput());
    assertEquals(new TokenClassificationSpec(5, "last_hidden_state", -1, null), Graft.host(bert)
        .tokenClassification(5, o -> o.output("last_hidden_state").ignoreIndex(-1)).spec().task());
    assertEquals(new TokenClassificationSpec(4, "", -100, null), Graft.host(bert).tokenClassification(4).spec().task());
    IllegalStateException twice = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
        () -> Graft.host(bert).classification(2).regression(1));
    assertTrue(twice.getMessage().contains("one task"), twice.getMessage());
  }
}
