package dev.graft.compiler;

import dev.graft.testing.MiniLmHost;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.dsl.Graft;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The compiler on the real all-MiniLM-L6-v2 export (opset 11, 6 layers × 384). */
class MiniLmCompileTest {
  private static final String QV = ".*/attention/self/(query|value)/MatMul";

  @Test
  void importNormalizesOpsetAndInfersSymbolicShapes() {
    Graph g = OnnxImport.read(MiniLmHost.get().model());
    ShapeInference.run(g);
    assertEquals(11, g.sourceOpset());
    assertEquals(
        TensorType.of(TensorType.FLOAT, List.of(Dim.symbol("batch_size"), Dim.symbol("sequence_length"), Dim.of(384))),
        g.type("last_hidden_state"));
    Node reshape = g.nodes().stream()
        .filter(n -> n.name().equals("/encoder/layer.0/attention/self/Reshape")).findFirst().orElseThrow();
    assertEquals("[batch_size, sequence_length, 12, 32]", g.type(reshape.output(0)).dims().toString());
    // Opset-11 Unsqueeze carried its axes as an attribute; normalized, they are an input.
    Node unsqueeze = g.nodes().stream().filter(n -> n.opType().equals("Unsqueeze")).findFirst().orElseThrow();
    assertEquals(2, unsqueeze.inputs().size());
    assertFalse(unsqueeze.has("axes"));
  }

  @Test
  void loraOnQueryAndValueOfEveryLayer() {
    CompiledGraft graft = Graft.host(MiniLmHost.get()).name("Sentiment")
        .lora(QV, l -> l.rank(8).alpha(16))
        .classification(2)
        .compile();
    Manifest m = graft.manifest();
    List<Parameter> lora = m.getParametersList().stream()
        .filter(p -> p.getRole() == ParameterRole.LORA_A || p.getRole() == ParameterRole.LORA_B).toList();
    assertEquals(24, lora.size(), "6 layers × (query, value) × (A, B)");
    Parameter a0 = lora.get(0);
    assertEquals("encoder.layer.0.attention.self.query.lora_A", a0.getName());
    assertEquals(List.of(384L, 8L), a0.getShapeList());
    assertEquals("/encoder/layer.0/attention/self/query/MatMul", a0.getSiteNode());
    assertEquals(List.of(8L, 384L), lora.get(1).getShapeList());
    assertEquals("lora", m.getAdapters(0).getKind());
    assertEquals("8", m.getAdapters(0).getOptionsOrThrow("rank"));
    assertEquals(12, m.getAdapters(0).getSitesCount());
    assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"),
        m.getInputsList().stream().map(i -> i.getName()).toList());
    // Frozen weights are declared external, never embedded: graphs stay small.
    assertTrue(m.getHostInitializersList().contains("embeddings.word_embeddings.weight"));
    assertTrue(graft.train().getSerializedSize() < 1_000_000, "train graph " + graft.train().getSerializedSize());
    assertTrue(graft.inference().getSerializedSize() < 500_000);
    long embedded = graft.train().getGraph().getInitializerList().stream()
        .filter(t -> t.getRawData().size() > 4096).count();
    assertEquals(0, embedded, "no large tensor is embedded in the training graph");
  }

  @Test
  void backwardPassSkipsTheFrozenPrefix() {
    CompiledGraft graft = Graft.host(MiniLmHost.get()).lora(".*/layer\\.5/attention/self/value/MatMul").classification(2).compile();
    // With LoRA only in the last layer, nothing in layers 0..4 is differentiated.
    long early = graft.train().getGraph().getNodeList().stream()
        .filter(n -> n.getName().startsWith("/grad/encoder/layer.") && !n.getName().startsWith("/grad/encoder/layer.5"))
        .count();
    assertEquals(0, early);
    assertTrue(graft.train().getGraph().getNodeList().stream().anyMatch(n -> n.getName().startsWith("/grad/encoder/layer.5")));
  }

  @Test
  void probeTrainsOnlyTheHead() {
    CompiledGraft probe = Graft.host(MiniLmHost.get()).classification(2).compile();
    assertEquals(List.of("classifier.weight", "classifier.bias"),
        probe.manifest().getParametersList().stream().map(Parameter::getName).toList());
    assertEquals(0, probe.train().getGraph().getNodeList().stream().filter(n -> n.getName().startsWith("/grad/encoder")).count());
  }

  @Test
  void firstTokenPoolingIsDifferentiable() {
    CompiledGraft g = Graft.host(MiniLmHost.get()).lora(QV)
        .classification(2, h -> h.pooling(dev.graft.compiler.spec.ClassificationSpec.Pooling.FIRST_TOKEN))
        .compile();
    assertTrue(g.train().getGraph().getNodeList().stream()
        .anyMatch(n -> n.getName().startsWith("/grad/head/first_token") && n.getOpType().equals("ScatterND")));
  }

  @Test
  void compilationIsDeterministic() {
    CompiledGraft a = Graft.host(MiniLmHost.get()).lora(QV).classification(2).compile();
    CompiledGraft b = Graft.host(MiniLmHost.get()).lora(QV).classification(2).compile();
    assertArrayEquals(a.train().toByteArray(), b.train().toByteArray());
    assertArrayEquals(a.inference().toByteArray(), b.inference().toByteArray());
  }

  @Test
  void layerFilterRestrictsSites() {
    CompiledGraft g = Graft.host(MiniLmHost.get()).lora(QV, l -> l.layers(0, 5)).classification(2).compile();
    assertEquals(List.of(
            "encoder.layer.0.attention.self.query.lora_A", "encoder.layer.0.attention.self.query.lora_B",
            "encoder.layer.0.attention.self.value.lora_A", "encoder.layer.0.attention.self.value.lora_B",
            "encoder.layer.5.attention.self.query.lora_A", "encoder.layer.5.attention.self.query.lora_B",
            "encoder.layer.5.attention.self.value.lora_A", "encoder.layer.5.attention.self.value.lora_B",
            "classifier.weight", "classifier.bias"),
        g.manifest().getParametersList().stream().map(Parameter::getName).toList());
  }

  @Test
  void everyErrorOfADeclarationIsReported() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(MiniLmHost.get())
        .lora(".*/attention/self/querry/MatMul", l -> l.rank(0))
        .lora("([", l -> l.dropout(1.5))
        .lora(QV, l -> l.layers(9))
        .classification(1, h -> h.output("pooled"))
        .compile());
    List<ErrorCode> codes = e.diagnostics().stream().map(Diagnostic::code).toList();
    assertEquals(List.of(ErrorCode.OPTION_OUT_OF_RANGE, ErrorCode.SELECTOR_MATCHES_NOTHING,
        ErrorCode.OPTION_NOT_A_PROBABILITY, ErrorCode.SELECTOR_INVALID, ErrorCode.LAYERS_INVALID,
        ErrorCode.HEAD_LABELS_OUT_OF_RANGE, ErrorCode.HEAD_OUTPUT_NOT_FOUND), codes);
    String nothing = e.diagnostics().get(1).message();
    assertTrue(nothing.startsWith("[GRAFT011] selector '.*/attention/self/querry/MatMul' matches no linear site"), nothing);
    assertTrue(nothing.contains("nearest node names: /encoder/layer.0/attention/self/query/MatMul"), nothing);
    assertEquals("[GRAFT012] LoRA rank must be in 1..4096, got 0", e.diagnostics().get(0).message());
    assertEquals("rank", e.diagnostics().get(0).attribute());
    assertTrue(e.diagnostics().get(4).message().contains("the host has layers [0, 1, 2, 3, 4, 5]"));
  }

  @Test
  void overlappingSelectorsAreAnError() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(MiniLmHost.get())
        .lora(QV).lora(".*/layer\\.0/attention/self/query/MatMul").classification(2).compile());
    assertEquals(ErrorCode.SITES_OVERLAP, e.diagnostics().get(0).code());
    assertTrue(e.getMessage().contains("/encoder/layer.0/attention/self/query/MatMul"));
  }
}
