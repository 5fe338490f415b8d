package dev.graft.compiler.diag;

import java.util.List;
import java.util.stream.Collectors;

/** Thrown by the builder API when a declaration has errors; carries all of them. */
public final class GraftCompileException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final List<Diagnostic> diagnostics;

  public GraftCompileException(List<Diagnostic> diagnostics) {
    super(diagnostics.stream().map(Diagnostic::message).collect(Collectors.joining("\n")));
    this.diagnostics = List.copyOf(diagnostics);
  }

  public List<Diagnostic> diagnostics() {
    return diagnostics;
  }
}
