package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.MiniLmHost;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.TinyCnnHost;
import dev.graft.testing.TinyDecoderHost;
import dev.graft.testing.TinyGpt2Host;
import dev.graft.testing.TinyLlamaHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Prompt tuning and prefix tuning: gradients, values against independent computations, errors, configs. */
class PromptPrefixTuningTest {
  /** The whole step of {@code adapter} on the float64 tiny BERT: h = 1e-6, |error| ≤ 1e-7 + 1e-5·|numeric|, max error < 1e-7. */
  private static void assertWholeStepMatchesCentralDifferences(String label, AdapterSpec adapter) throws OrtException {
    try (WholeStepCheck check = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE), adapter)) {
      double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.println(label + " max FD error " + worst);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void promptTuningWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    assertWholeStepMatchesCentralDifferences("prompt tuning", Adapters.of("prompt_tuning", "", Map.of("tokens", 3)));
  }

  @Test
  void prefixTuningWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    assertWholeStepMatchesCentralDifferences("prefix tuning", Adapters.of("prefix_tuning", "", Map.of("tokens", 2)));
  }

  @Test
  void prefixTuningWithProjectionWholeStepMatchesCentralDifferencesInFloat64() throws OrtException {
    assertWholeStepMatchesCentralDifferences("prefix tuning (projection)",
        Adapters.of("prefix_tuning", "", Map.of("tokens", 2, "projection", true, "projectionHidden", 3)));
  }

  @Test
  void promptTuningCompilesOnDecodersAndKeepsTheLogitsShape() {
    for (Graph host : List.of(TinyGpt2Host.graph(3), TinyLlamaHost.graph(3))) {
      CompiledGraft graft = Graft.host(TinyDecoderHost.host(host)).promptTuning(o -> o.tokens(2)).causalLm().compile();
      var logits = graft.inference().getGraph().getOutput(0).getType().getTensorType().getShape();
      assertEquals("batch", logits.getDim(0).getDimParam());
      assertEquals("sequence", logits.getDim(1).getDimParam());
      assertEquals("PROMPT_TUNING", JsonParser.parseString(graft.manifest().getAdapterConfig()).getAsJsonObject()
          .get("peft_type").getAsString());
    }
  }

  private static List<Diagnostic> errors(Graph host, String kind) {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(host))
        .adapter(kind, "", o -> {}).classification(2).compile());
    return e.diagnostics();
  }

  @Test
  void prefixTuningOnDecodersWithoutSeparateKeyProjectionsIsAnError() {
    for (Graph host : List.of(TinyGpt2Host.graph(3), TinyLlamaHost.graph(3))) {
      GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyDecoderHost.host(host))
          .adapter("prefix_tuning", "", o -> {}).causalLm().compile());
      Diagnostic d = e.diagnostics().get(0);
      assertEquals(ErrorCode.PREFIX_ATTENTION_NOT_FOUND, d.code(), d.message());
      assertTrue(d.message().startsWith("[GRAFT077] cannot place prefix tuning on tiny-decoder: looked for attention blocks"),
          d.message());
      assertTrue(d.message().contains("keys come from"), d.message());
    }
  }

  @Test
  void promptTuningNeedsTheWordEmbeddingLookupOfInputIds() {
    Diagnostic d = assertThrows(GraftCompileException.class, () -> Graft.host(TinyCnnHost.host(3))
        .adapter("prompt_tuning", "", o -> {}).classification(2).compile()).diagnostics().get(0);
    assertEquals(ErrorCode.PROMPT_EMBEDDING_NOT_FOUND, d.code(), d.message());
    assertTrue(d.message().contains("prompt tuning extends input 'input_ids'"), d.message());

    // The lookup's table computed in the graph (not a host initializer): no site.
    Graph g = TinyBertHost.graph(3);
    String table = g.op("/embeddings/word_embeddings/Identity", "Identity", List.of("embeddings.word_embeddings.weight"));
    g.replaceUses("embeddings.word_embeddings.weight", table, List.of(g.nodes().get(g.nodes().size() - 1)));
    g.sortTopologically();
    Diagnostic d2 = errors(g, "prompt_tuning").get(0);
    assertEquals(ErrorCode.PROMPT_EMBEDDING_NOT_FOUND, d2.code(), d2.message());
    assertTrue(d2.message().contains("found Gather '/embeddings/word_embeddings/Gather' of computed value"), d2.message());
  }

  @Test
  void promptTuningRejectsInputsItCannotExtend() {
    Graph withPositions = TinyBertHost.graph(3);
    withPositions.addInput("position_ids", TensorType.of(TensorType.INT64, List.of(Dim.symbol("batch"), Dim.symbol("sequence"))));
    Diagnostic d = errors(withPositions, "prompt_tuning").get(0);
    assertEquals(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE, d.code(), d.message());
    assertTrue(d.message().contains("takes 'position_ids' as an input"), d.message());

    Graph withOther = TinyBertHost.graph(3);
    withOther.addInput("special_tokens_mask", TensorType.of(TensorType.INT64, List.of(Dim.symbol("batch"), Dim.symbol("sequence"))));
    Diagnostic d2 = errors(withOther, "prompt_tuning").get(0);
    assertEquals(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE, d2.code(), d2.message());
    assertTrue(d2.message().contains("input 'special_tokens_mask'"), d2.message());
  }

  @Test
  void prefixTuningRejectsAHeadSplitShapedByTheQueries() {
    // Keys reshaped to the queries' shape: longer keys would not follow.
    Graph g = TinyBertHost.graph(3);
    for (int l = 0; l < TinyBertHost.LAYERS; l++) {
      String m = "/encoder/layer." + l + "/attention/self";
      dev.graft.compiler.ir.Node reshape = g.nodes().stream().filter(n -> n.name().equals(m + "/Reshape_1")).findFirst().orElseThrow();
      String queryShape = g.op(m + "/query_shape", "Shape", List.of(g.producer(
          g.nodes().stream().filter(n -> n.name().equals(m + "/Reshape")).findFirst().orElseThrow().input(0)).output(0)));
      String target = g.op(m + "/key_shape", "Concat", List.of(queryShape, g.longs(m + "/heads", List.of(2L, 4L))),
          dev.graft.compiler.ir.Node.attr("axis", 0L));
      String reshaped = g.op(m + "/key_reshape", "Reshape", List.of(reshape.input(0),
          g.op(m + "/key_shape_4", "Slice", List.of(target, g.longs(m + "/s0", List.of(0L)), g.longs(m + "/s1", List.of(4L))))));
      g.replaceUses(reshape.output(0), reshaped, List.of());
    }
    g.sortTopologically();
    dev.graft.compiler.ir.ShapeInference.run(g);
    g.removeUnused();
    Diagnostic d = errors(g, "prefix_tuning").get(0);
    assertEquals(ErrorCode.PREFIX_SHAPES_DO_NOT_FOLLOW, d.code(), d.message());
    assertTrue(d.message().contains("/encoder/layer.0/attention/self/MatMul would give scores"), d.message());
  }

  @Test
  void promptTuningManifestAndPeftConfigOnMiniLm() {
    Manifest m = Graft.host(MiniLmHost.get()).promptTuning(o -> o.tokens(10)).classification(2).compile().manifest();
    assertEquals("prompt_tuning", m.getAdapters(0).getKind());
    assertEquals(Map.of("tokens", "10", "init", "vocab"), m.getAdapters(0).getOptionsMap());
    assertEquals(List.of("embeddings.word_embeddings"), m.getAdapters(0).getSitesList());
    Parameter p = m.getParameters(0);
    assertEquals("embeddings.word_embeddings.prompt_embeddings", p.getName());
    assertEquals(List.of(10L, 384L), p.getShapeList());
    assertEquals(Init.HOST_ROWS, p.getInit());
    assertEquals("embeddings.word_embeddings.weight", p.getInitSource());
    assertTrue(m.getHostInitializersList().contains("embeddings.word_embeddings.weight"));
    assertEquals("prompt_embeddings", p.getSaveKey());
    assertEquals(List.of(10L, 384L), p.getSaveShapeList());
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("PROMPT_TUNING", c.get("peft_type").getAsString());
    assertEquals(10, c.get("num_virtual_tokens").getAsInt());
    assertEquals(384, c.get("token_dim").getAsInt());
    assertEquals(1, c.get("num_transformer_submodules").getAsInt());
    assertEquals(12, c.get("num_attention_heads").getAsInt());
    assertEquals(6, c.get("num_layers").getAsInt());
    assertEquals("RANDOM", c.get("prompt_tuning_init").getAsString());
    assertEquals("SEQ_CLS", c.get("task_type").getAsString());
  }

  @Test
  void prefixTuningManifestAndPeftConfigOnMiniLm() {
    Manifest m = Graft.host(MiniLmHost.get()).prefixTuning(o -> o.tokens(4)).classification(2).compile().manifest();
    assertEquals(6, m.getAdapters(0).getSitesCount());
    assertEquals("encoder.layer.0.attention.self", m.getAdapters(0).getSites(0));
    Parameter p = m.getParameters(0);
    assertEquals("prefix_tuning.prompt_embeddings", p.getName());
    assertEquals(List.of(4L, 6L * 2 * 384), p.getShapeList());
    assertEquals("prompt_embeddings", p.getSaveKey());
    JsonObject c = JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
    assertEquals("PREFIX_TUNING", c.get("peft_type").getAsString());
    assertEquals(4, c.get("num_virtual_tokens").getAsInt());
    assertEquals(384, c.get("token_dim").getAsInt());
    assertEquals(12, c.get("num_attention_heads").getAsInt());
    assertEquals(6, c.get("num_layers").getAsInt());
    assertEquals(false, c.get("prefix_projection").getAsBoolean());

    // Some layers only, or a projection: PEFT cannot hold it, Graft's config is saved.
    Manifest some = Graft.host(MiniLmHost.get()).prefixTuning(o -> o.tokens(4).layers(1, 2)).classification(2).compile()
        .manifest();
    assertEquals(List.of("encoder.layer.1.attention.self", "encoder.layer.2.attention.self"), some.getAdapters(0).getSitesList());
    assertEquals(List.of(4L, 2L * 2 * 384), some.getParameters(0).getShapeList());
    assertEquals("GRAFT", JsonParser.parseString(some.getAdapterConfig()).getAsJsonObject().get("peft_type").getAsString());
    Manifest projected = Graft.host(MiniLmHost.get()).prefixTuning(o -> o.tokens(4).projection(true).projectionHidden(16))
        .classification(2).compile().manifest();
    assertEquals(List.of("prefix_tuning.embedding.weight", "prefix_tuning.transform.0.weight", "prefix_tuning.transform.0.bias",
            "prefix_tuning.transform.2.weight", "prefix_tuning.transform.2.bias", "classifier.weight", "classifier.bias"),
        projected.getParametersList().stream().map(Parameter::getName).toList());
    assertEquals(List.of(16L, 6L * 2 * 384), projected.getParameters(3).getShapeList());
    assertEquals("GRAFT", JsonParser.parseString(projected.getAdapterConfig()).getAsJsonObject().get("peft_type").getAsString());
  }
}
