package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The one adapter mechanism: options, errors, saved names and config, checked through LoRA. */
class AdapterKindsTest {
  private static final String QV = ".*/(query|value)/MatMul";

  @Test
  void loraWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    try (WholeStepCheck check = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        Adapters.lora(QV, 2, 4))) {
      double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void manifestRecordsTheDeclarationAndSaveNames() {
    Manifest m = Graft.host(TinyBertHost.host(3)).lora(QV, l -> l.rank(2).alpha(4).dropout(0.1)).classification(2)
        .compile().manifest();
    assertEquals(1, m.getAdaptersCount());
    assertEquals("lora", m.getAdapters(0).getKind());
    assertEquals(Map.of("rank", "2", "alpha", "4", "dropout", "0.1", "rslora", "false", "dora", "false", "init", "default"),
        m.getAdapters(0).getOptionsMap());
    assertEquals(List.of("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
        "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"), m.getAdapters(0).getSitesList());
    Parameter a = m.getParameters(0);
    assertEquals("base_model.model.encoder.layer.0.attention.self.query.lora_A.weight", a.getSaveKey());
    assertEquals(List.of(2L, 8L), a.getSaveShapeList());
    assertTrue(a.getSaveTransposed());
    assertEquals(1, a.getAdapter());
    Parameter bias = m.getParameters(m.getParametersCount() - 1);
    assertEquals("base_model.model.classifier.bias", bias.getSaveKey());
    assertEquals(0, bias.getAdapter());
    assertTrue(bias.getNoDecay());
  }

  @Test
  void loraSavesPeftsConfig() {
    Manifest m = Graft.host(TinyBertHost.host(3))
        .lora(".*/query/MatMul", l -> l.rank(2).alpha(16).layers(1))
        .lora(".*/value/MatMul", l -> l.rank(4).alpha(8).layers(1))
        .classification(2).compile().manifest();
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("LORA", c.get("peft_type").getAsString());
    assertEquals("SEQ_CLS", c.get("task_type").getAsString());
    assertEquals(2, c.get("r").getAsInt());
    assertEquals("16", c.get("lora_alpha").toString());
    assertEquals("[\"query\",\"value\"]", c.get("target_modules").toString());
    assertEquals("{\"value\":4}", c.get("rank_pattern").toString());
    assertEquals("{\"value\":8}", c.get("alpha_pattern").toString());
    assertEquals("[1]", c.get("layers_to_transform").toString());
    assertEquals("[\"classifier\"]", c.get("modules_to_save").toString());
    assertEquals("none", c.get("bias").getAsString());
    assertEquals(false, c.get("use_dora").getAsBoolean());
    assertTrue(c.get("base_model_name_or_path").isJsonNull(), "left for the user to set, not the ONNX file's name");
    assertFalse(c.has("exclude_modules"), "PEFT before 0.14 refuses the entry");
  }

  @Test
  void declarationsPeftCannotExpressTogetherSaveGraftsConfig() {
    Manifest m = Graft.host(TinyBertHost.host(3))
        .lora(".*/query/MatMul", l -> l.rank(2).dropout(0.1))
        .lora(".*/value/MatMul", l -> l.rank(2))
        .classification(2).compile().manifest();
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("GRAFT", c.get("peft_type").getAsString());
    JsonObject first = c.getAsJsonArray("graft_adapters").get(0).getAsJsonObject();
    assertEquals("lora", first.get("kind").getAsString());
    assertEquals("0.1", first.getAsJsonObject("options").get("dropout").getAsString());
  }

  @Test
  void unknownKindsAndOptionsAreErrorsThatListWhatExists() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .adapter("lorax", QV, o -> {})
        .lora(QV, o -> o.set("rnak", 4).set("alpha", "big"))
        .classification(2).compile());
    List<ErrorCode> codes = e.diagnostics().stream().map(Diagnostic::code).toList();
    assertEquals(List.of(ErrorCode.ADAPTER_KIND_UNKNOWN, ErrorCode.ADAPTER_OPTION_UNKNOWN,
        ErrorCode.ADAPTER_OPTION_UNKNOWN), codes);
    assertTrue(e.diagnostics().get(0).message().contains("unknown adapter kind 'lorax'; known kinds: [lora"),
        e.diagnostics().get(0).message());
    String options = e.diagnostics().get(2).message();
    assertTrue(options.contains("LoRA has no option 'rnak'") && options.contains("[rank, alpha, dropout, rslora, dora, init]"), options);
  }
}
