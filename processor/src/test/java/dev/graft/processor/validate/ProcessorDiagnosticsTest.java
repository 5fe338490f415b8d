package dev.graft.processor.validate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import org.junit.jupiter.api.Test;

class ProcessorDiagnosticsTest {
  /** What the processor reports when compiling a graft throws (it catches, never lets javac crash). */
  @Test
  void anInternalErrorNamesTheGraftAndTheFailureAndAsksForAReport() {
    Diagnostic d = ProcessorDiagnostics.internalError(null, "SentimentLora", new IllegalStateException("no plan"));
    assertEquals(ErrorCode.INTERNAL_ERROR, d.code());
    assertEquals(
        "[GRAFT099] internal error compiling SentimentLora: java.lang.IllegalStateException: no plan; please report it",
        d.message());
    assertNull(d.attribute());
  }
}
