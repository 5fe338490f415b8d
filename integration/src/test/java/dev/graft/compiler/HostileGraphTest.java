package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.testing.Adapters;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Hosts the fuzzer found (issue 15, finding 6) that import but break a later pass's assumption:
 * compilation fails with coded diagnostics, never a raw exception out of {@link GraftCompiler}.
 */
class HostileGraphTest {
  @Test
  void finding6_aModelWithoutAGraphIsACodedDiagnosticNotARawException() {
    // Found by OnnxCompileFuzzTest: empty bytes parse as a ModelProto with no graph
    // (IndexOutOfBoundsException in Validation before).
    HostModel empty = new HostModel("empty.onnx", ModelProto.getDefaultInstance(), "sha");
    GraftSpec spec = new GraftSpec("Empty", "empty.onnx", List.of(Adapters.lora("", 4, 8)),
        new ClassificationSpec(2, ClassificationSpec.Pooling.FIRST_TOKEN, "", null), AdamWSpec.DEFAULT, null);
    CompileResult r = GraftCompiler.compile(spec, empty);
    assertFalse(r.diagnostics().isEmpty(), "the compilation should fail");
    for (Diagnostic d : r.diagnostics()) {
      assertTrue(d.code() != null, "every diagnostic has a code: " + d.message());
    }
    assertTrue(r.graft() == null);
  }
}
