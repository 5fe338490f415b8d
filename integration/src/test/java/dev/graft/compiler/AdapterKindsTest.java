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
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.PeftConfigs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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
    List<String> linear = new java.util.ArrayList<>();
    for (int l = 0; l < TinyBertHost.LAYERS; l++) {
      for (String module : List.of("attention.self.query", "attention.self.key", "attention.self.value",
          "attention.output.dense", "intermediate.dense", "output.dense")) {
        linear.add("encoder.layer." + l + "." + module);
      }
    }
    assertEquals(linear, m.getLinearModulesList(), "the host's linear layers as imported, in graph order, without the adapters'");
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

  /** The tiny host's linear modules (two layers of query, key, value, attention output, FFN in and out). */
  private static Set<String> tinyLinearModules() {
    Set<String> out = new TreeSet<>();
    for (int l = 0; l < TinyBertHost.LAYERS; l++) {
      for (String m : List.of("attention.self.query", "attention.self.key", "attention.self.value",
          "attention.output.dense", "intermediate.dense", "output.dense")) {
        out.add("encoder.layer." + l + "." + m);
      }
    }
    return out;
  }

  /** The config of {@code g} resolved with the runtime's (PEFT's) rules against the host's linear modules. */
  private static Set<String> resolved(JsonObject c, Manifest m) {
    assertEquals(tinyLinearModules(), new TreeSet<>(m.getLinearModulesList()));
    return PeftConfigs.resolve("test", c, new TreeSet<>(m.getLinearModulesList()));
  }

  @Test
  void loraTargetModulesResolveToExactlyTheGraftsSites() {
    Map<String, String> spelled = new LinkedHashMap<>();
    Map<String, java.util.function.UnaryOperator<Graft>> selectors = new LinkedHashMap<>();
    selectors.put("query/value", g -> g.lora(QV, l -> l.rank(2)));
    selectors.put("attention-output dense", g -> g.lora(".*/attention/output/dense/MatMul", l -> l.rank(2)));
    selectors.put("query/value of layer 1", g -> g.lora(QV, l -> l.rank(2).layers(1)));
    selectors.put("FFN dense of layer 0", g -> g.lora(".*/layer.[01]/(intermediate|output)/dense/MatMul", l -> l.rank(2).layers(0)));
    selectors.put("query of layer 0, value of layer 1", g -> g.lora(".*/query/MatMul", l -> l.rank(2).layers(0))
        .lora(".*/value/MatMul", l -> l.rank(2).layers(1)));
    selectors.put("every dense", g -> g.lora(".*/dense/MatMul", l -> l.rank(2)));
    for (var e : selectors.entrySet()) {
      Manifest m = e.getValue().apply(Graft.host(TinyBertHost.host(3))).classification(2).compile().manifest();
      JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
      assertEquals("LORA", c.get("peft_type").getAsString(), e.getKey());
      Set<String> sites = new TreeSet<>();
      m.getAdaptersList().forEach(a -> sites.addAll(a.getSitesList()));
      assertEquals(sites, resolved(c, m), e.getKey() + ": " + c);
      spelled.put(e.getKey(), c.get("target_modules") + " " + c.get("layers_to_transform"));
    }
    assertEquals(Map.of(
        "query/value", "[\"query\",\"value\"] null",
        "attention-output dense", "[\"encoder.layer.0.attention.output.dense\",\"encoder.layer.1.attention.output.dense\"] null",
        "query/value of layer 1", "[\"query\",\"value\"] [1]",
        "FFN dense of layer 0", "[\"encoder.layer.0.intermediate.dense\",\"encoder.layer.0.output.dense\"] null",
        "query of layer 0, value of layer 1", "[\"encoder.layer.0.attention.self.query\",\"encoder.layer.1.attention.self.value\"] null",
        "every dense", "[\"dense\"] null"), spelled);
  }

  @Test
  void ranksOfModulesSharingAShortNameAreKeyedByPath() {
    Manifest m = Graft.host(TinyBertHost.host(3))
        .lora(".*/attention/output/dense/MatMul", l -> l.rank(2).alpha(4))
        .lora(".*/layer.[01]/output/dense/MatMul", l -> l.rank(4).alpha(8))
        .lora(".*/query/MatMul", l -> l.rank(3).alpha(4))
        .classification(2).compile().manifest();
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("LORA", c.get("peft_type").getAsString());
    Set<String> sites = new TreeSet<>();
    m.getAdaptersList().forEach(a -> sites.addAll(a.getSitesList()));
    assertEquals(sites, resolved(c, m), c.toString());
    assertEquals("{\"encoder\\\\.layer\\\\.0\\\\.output\\\\.dense\":4,\"encoder\\\\.layer\\\\.1\\\\.output\\\\.dense\":4,\"query\":3}",
        c.get("rank_pattern").toString());
    for (String site : sites) {
      int want = site.endsWith("attention.output.dense") ? 2 : site.endsWith("output.dense") ? 4 : 3;
      assertEquals(want, PeftConfigs.pattern("test", "rank_pattern", c.getAsJsonObject("rank_pattern"), site, c.get("r"))
          .getAsInt(), site);
      double alpha = site.endsWith("attention.output.dense") || site.endsWith("query") ? 4 : 8;
      assertEquals(alpha, PeftConfigs.pattern("test", "alpha_pattern", c.getAsJsonObject("alpha_pattern"), site,
          c.get("lora_alpha")).getAsDouble(), site);
    }
  }

  @Test
  void loraSpelledByPathsSavesAndLoadsBack(@TempDir Path dir) throws Exception {
    Path hostFile = dir.resolve("tiny.onnx");
    Files.write(hostFile, TinyBertHost.host(3).model().toByteArray());
    CompiledGraft graft = Graft.host(HostModel.read(hostFile))
        .lora(".*/attention/output/dense/MatMul", l -> l.rank(2))
        .lora(".*/layer.1/output/dense/MatMul", l -> l.rank(4))
        .classification(2).compile();
    Map<String, long[][]> inputs = Map.of("input_ids", new long[][] {{3, 7, 12, 8, 1}, {5, 9, 13, 0, 0}},
        "attention_mask", new long[][] {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}, "token_type_ids", new long[2][5]);
    ModelOptions options = ModelOptions.defaults().withSeed(7).withHost(hostFile);
    Path saved = dir.resolve("adapter");
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), options)) {
      model.trainStep(inputs, new long[] {1, 0}, 0.05f);
      model.saveAdapter(saved);
      JsonObject c = JsonParser.parseString(Files.readString(saved.resolve(PeftAdapters.CONFIG_FILE))).getAsJsonObject();
      assertEquals("[\"encoder.layer.0.attention.output.dense\",\"encoder.layer.1.attention.output.dense\","
          + "\"encoder.layer.1.output.dense\"]", c.get("target_modules").toString());
      float[][] before = model.predict(inputs);
      try (AdapterModel fresh = AdapterModel.open(Graft.graphs(graft), options.withSeed(8))) {
        fresh.loadAdapter(saved);
        float[][] after = fresh.predict(inputs);
        for (int i = 0; i < before.length; i++) {
          org.junit.jupiter.api.Assertions.assertArrayEquals(before[i], after[i], 0f, "row " + i);
        }
      }
    }
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
