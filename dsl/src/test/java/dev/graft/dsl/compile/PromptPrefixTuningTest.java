package dev.graft.dsl.compile;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.dsl.ir.TensorType;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Prompt tuning and prefix tuning: gradients, values against independent computations, errors, configs. */
class PromptPrefixTuningTest {
  @Test
  void promptTuningWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    try (WholeStepCheck check = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        Adapters.of("prompt_tuning", "", Map.of("tokens", 3)))) {
      double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.println("prompt tuning max FD error " + worst);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void prefixTuningWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    try (WholeStepCheck check = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        Adapters.of("prefix_tuning", "", Map.of("tokens", 2)))) {
      double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.println("prefix tuning max FD error " + worst);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }
}
