package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A parameter the compiler adds (a head's, an adapter's) named like a value of the host: ONNX
 * has one namespace of values, so the graft would be invalid (ONNX Runtime refused it with its own
 * message before); the compiler says which parameter and which host value, GRAFT181.
 */
class ParameterNameClashTest {
  private static GraftSpec spec() {
    return spec("last_hidden_state");
  }

  private static GraftSpec spec(String output) {
    return new GraftSpec("Clash", "tiny.onnx", List.of(Adapters.lora(".*/(query|value)/MatMul", 4, 8)),
        new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, output, null), AdamWSpec.DEFAULT, null);
  }

  @Test
  void aHostInitializerNamedLikeTheHeadsBiasIsGraft181() {
    Graph host = TinyBertHost.graph(3);
    host.addInitializer(Tensors.scalar("classifier.bias", dev.graft.compiler.ir.TensorType.FLOAT, 1.0), false);
    // Used by the host, so no pass could drop it: last_hidden_state + 0 · classifier.bias.
    addUse(host, "classifier.bias");
    CompileResult r = GraftCompiler.compile(spec("last_hidden_state_used"), TinyBertHost.host(host));
    assertNull(r.graft());
    assertEquals(1, r.diagnostics().size(), r.diagnostics().toString());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.PARAMETER_NAME_CLASH, d.code());
    assertTrue(d.message().contains("parameter 'classifier.bias' (of classifier) has the name of an initializer of the host"),
        d.message());
  }

  @Test
  void aHostValueNamedLikeAnAdaptersParameterIsGraft181() {
    CompileResult clean = GraftCompiler.compile(spec(), TinyBertHost.host(3));
    assertNotNull(clean.graft(), clean.diagnostics().toString());
    String lora = clean.graft().manifest().getParametersList().stream()
        .map(p -> p.getName()).filter(n -> n.contains("lora")).findFirst().orElseThrow();
    Graph host = TinyBertHost.graph(3);
    addUse(host, host.opTo(lora, "/clash/Identity", "Identity", List.of("embeddings.LayerNorm.weight")));
    CompileResult r = GraftCompiler.compile(spec("last_hidden_state_used"), TinyBertHost.host(host));
    assertNull(r.graft());
    assertEquals(ErrorCode.PARAMETER_NAME_CLASH, r.diagnostics().get(0).code(), r.diagnostics().toString());
    assertTrue(r.diagnostics().get(0).message().contains("parameter '" + lora + "'"), r.diagnostics().toString());
    assertTrue(r.diagnostics().get(0).message().contains("has the name of a value of the host"), r.diagnostics().toString());
  }

  /** Replaces the host output last_hidden_state by last_hidden_state + 0 · value. */
  private static void addUse(Graph host, String value) {
    String out = "last_hidden_state";
    String zero = host.op("/clash/Mul", "Mul", List.of(value,
        host.constant("/clash/zero", Tensors.scalar("zero", dev.graft.compiler.ir.TensorType.FLOAT, 0.0))));
    String sum = host.opTo("last_hidden_state_used", "/clash/Add", "Add", List.of(out, zero));
    host.outputs().clear();
    host.outputs().add(sum);
  }
}
