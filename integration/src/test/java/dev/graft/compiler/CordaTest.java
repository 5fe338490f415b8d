package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * CorDA as LoRA's {@code init = "corda_ipm"} / {@code "corda_kpm"} on the tiny BERT host: the
 * whole training step against central differences in float64 (its frozen A0, B0 and the residual
 * correction), the manifest entries the run time's calibration reads, PEFT's config value, and
 * the rank error GRAFT340.
 */
class CordaTest {
  private static final String QV = ".*/(query|value)/MatMul";

  private static AdapterSpec lora(String target, Map<String, Object> options) {
    return Adapters.of("lora", target, options);
  }

  @Test
  void cordaWholeStepMatchesCentralDifferencesWithItsFactorsFrozen() throws OrtException {
    for (String init : List.of("corda_ipm", "corda_kpm")) {
      try (WholeStepCheck c = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
          lora(QV, Map.of("rank", 2, "alpha", 4, "init", init)))) {
        List<String> frozen = c.params.stream().filter(Parameter::getFrozen).map(Parameter::getName).toList();
        assertEquals(8, frozen.size(), "A0 and B0 of 4 sites: " + frozen);
        double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
        System.out.printf("CorDA %s whole step: max |analytic − central difference| = %.3g%n", init, worst);
        assertTrue(worst < 1e-7, init + " max error " + worst);
      }
    }
  }

  @Test
  void theManifestNamesEachSitesInputAndTheMode() {
    for (String init : List.of("corda_ipm", "corda_kpm")) {
      Manifest m = Graft.host(TinyBertHost.host(3)).lora(QV, l -> l.rank(2).alpha(4).init(init)).classification(2)
          .compile().manifest();
      Map<String, Parameter> byName = new HashMap<>();
      m.getParametersList().forEach(p -> byName.put(p.getName(), p));
      Parameter a = byName.get("encoder.layer.0.attention.self.query.lora_A");
      Parameter a0 = byName.get("encoder.layer.0.attention.self.query.lora_A0");
      Parameter b0 = byName.get("encoder.layer.0.attention.self.query.lora_B0");
      Parameter value = byName.get("encoder.layer.0.attention.self.value.lora_B");
      assertEquals(Init.CORDA_A, a.getInit());
      assertEquals(Init.CORDA_A, a0.getInit());
      assertEquals(Init.CORDA_B, b0.getInit());
      assertTrue(a0.getFrozen() && b0.getFrozen() && !a.getFrozen());
      assertEquals(2.0, a.getInitScale(), "the LoRA scaling alpha / r");
      assertEquals("encoder.layer.0.attention.self.query.weight", a.getInitSource());
      assertFalse(a.getCovarianceInput().isEmpty());
      assertEquals(a.getCovarianceInput(), value.getCovarianceInput(), "query and value of a layer read one input");
      assertEquals(init.equals("corda_kpm"), a.getSmallestComponents());
      assertEquals("", a0.getSaveKey(), "the frozen factors are not saved");
      JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
      assertEquals("\"corda\"", c.get("init_lora_weights").toString(), "PEFT's value for a CorDA adapter");
    }
  }

  @Test
  void cordaRankAboveTheWeightsRankIsGraft340() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .lora(".*/layer.0/attention/self/query/MatMul", l -> l.rank(9).init("corda_ipm")).classification(2).compile());
    Diagnostic d = e.diagnostics().get(0);
    assertEquals(ErrorCode.CORDA_RANK_TOO_LARGE, d.code());
    assertEquals("rank", d.attribute());
    assertEquals("[GRAFT340] CorDA rank 9 exceeds the rank of the weight of /encoder/layer.0/attention/self/query/MatMul"
        + " [8, 8]; use rank <= 8", d.message());
  }
}
