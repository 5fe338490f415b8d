package dev.graft.compiler;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.GraftCompileException;
import java.util.List;
import org.jspecify.annotations.Nullable;

/** Either a compiled graft or the complete list of errors of the declaration. */
public record CompileResult(@Nullable CompiledGraft graft, List<Diagnostic> diagnostics) {
  public CompileResult {
    diagnostics = List.copyOf(diagnostics);
    if ((graft == null) == diagnostics.isEmpty()) {
      throw new IllegalArgumentException("exactly one of graft and diagnostics must be present");
    }
  }

  public static CompileResult failed(List<Diagnostic> diagnostics) {
    return new CompileResult(null, diagnostics);
  }

  public boolean ok() {
    return graft != null;
  }

  /** The graft, or a {@link GraftCompileException} carrying every diagnostic. */
  public CompiledGraft orThrow() {
    if (graft == null) {
      throw new GraftCompileException(diagnostics);
    }
    return graft;
  }
}
