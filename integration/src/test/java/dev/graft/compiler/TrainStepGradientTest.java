package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.spec.manifest.Parameter;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The whole training step of a graft compiled onto the float32 {@link TinyBertHost}: LoRA (rank
 * 2, alpha 4) on the query and value projections of both layers and a 2-label head (mean and
 * first-token pooling), through {@link WholeStepCheck}. Every gradient the step exposes is
 * compared element by element with central differences of its loss, the forward pass with the
 * inference graph's, and the AdamW update with a hand computation.
 */
class TrainStepGradientTest {
  private static final Map<ClassificationSpec.Pooling, WholeStepCheck> CHECKS = new EnumMap<>(ClassificationSpec.Pooling.class);

  private static synchronized WholeStepCheck check(ClassificationSpec.Pooling pooling) throws OrtException {
    WholeStepCheck c = CHECKS.get(pooling);
    if (c == null) {
      c = WholeStepCheck.of(TinyBertHost.graph(2024), new ClassificationSpec(2, pooling, "", null),
          Adapters.lora(".*/(query|value)/MatMul", 2, 4));
      CHECKS.put(pooling, c);
    }
    return c;
  }

  @AfterAll
  static void close() throws OrtException {
    for (WholeStepCheck c : CHECKS.values()) {
      c.close();
    }
    CHECKS.clear();
  }

  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void stepHasTheExpectedParametersAndOutputs(ClassificationSpec.Pooling pooling) throws OrtException {
    WholeStepCheck c = check(pooling);
    List<String> names = c.params.stream().map(Parameter::getName).toList();
    assertEquals(List.of(
        "encoder.layer.0.attention.self.query.lora_A", "encoder.layer.0.attention.self.query.lora_B",
        "encoder.layer.0.attention.self.value.lora_A", "encoder.layer.0.attention.self.value.lora_B",
        "encoder.layer.1.attention.self.query.lora_A", "encoder.layer.1.attention.self.query.lora_B",
        "encoder.layer.1.attention.self.value.lora_A", "encoder.layer.1.attention.self.value.lora_B",
        "classifier.weight", "classifier.bias"), names);
    assertTrue(c.graft.manifest().getHostInitializersList().contains("embeddings.word_embeddings.weight"));
    assertTrue(c.graft.manifest().getHostInitializersList().contains("encoder.layer.1.intermediate.dense.weight"));
    Set<String> outs = c.trainOutputs();
    for (String n : names) {
      assertTrue(outs.containsAll(List.of(n + ".grad", n + ".next", n + ".adam_m.next", n + ".adam_v.next")), n);
    }
    double loss = c.loss(Map.of());
    assertTrue(loss > 0.05 && loss < 5, "a plausible 2-class cross-entropy: " + loss);
  }

  /**
   * Every element of every gradient against central differences of the loss in float32, h =
   * 1e-2: |analytic − numeric| ≤ 1e-3 + 1e-2·|numeric| element-wise.
   */
  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void everyGradientMatchesCentralDifferences(ClassificationSpec.Pooling pooling) throws OrtException {
    check(pooling).assertGradientsMatch(1e-2, 1e-3, 1e-2);
  }

  /**
   * The training step's forward pass is the inference graph's (no LoRA dropout here): same
   * logits to 1e-6, and its loss is the mean cross-entropy of those logits against the labels.
   */
  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void trainingForwardMatchesInferenceAndLossIsCrossEntropy(ClassificationSpec.Pooling pooling) throws OrtException {
    WholeStepCheck c = check(pooling);
    Map<String, double[]> t = c.run(Map.of(), Set.of("logits", "loss"));
    double[] logits = c.inference();
    assertEquals(4, logits.length);
    double ce = 0;
    for (int b = 0; b < 2; b++) {
      assertEquals(logits[2 * b], t.get("logits")[2 * b], 1e-6);
      assertEquals(logits[2 * b + 1], t.get("logits")[2 * b + 1], 1e-6);
      double z0 = logits[2 * b];
      double z1 = logits[2 * b + 1];
      double max = Math.max(z0, z1);
      double lse = max + Math.log(Math.exp(z0 - max) + Math.exp(z1 - max));
      ce += lse - (WholeStepCheck.LABELS[b] == 0 ? z0 : z1);
    }
    assertEquals(ce / 2, t.get("loss")[0], 1e-5);
  }

  /**
   * With zero moments at step 1, m̂ = g and v̂ = g², so p' = p − lr·(g/(|g|+ε) + λ·p) for
   * weights and p − lr·g/(|g|+ε) for the bias. Tolerance 2e-7 on the ≈ lr-sized update
   * (float32 rounding of the bias corrections is ≈ 1e-5 relative).
   */
  @ParameterizedTest
  @EnumSource(ClassificationSpec.Pooling.class)
  void adamWUpdateMatchesHandComputation(ClassificationSpec.Pooling pooling) throws OrtException {
    check(pooling).assertAdamWFirstStep(2e-7);
  }
}
