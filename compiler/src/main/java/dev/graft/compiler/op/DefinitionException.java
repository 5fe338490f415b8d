package dev.graft.compiler.op;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import org.jspecify.annotations.Nullable;

/**
 * A fault of a custom adapter kind's definition (GRAFT090–GRAFT093), thrown by the op that finds
 * it while {@link CustomAdapterKind#define} runs. The compiler reports it as a diagnostic of the
 * declaration that uses the kind; see {@link CustomAdapterKind#diagnose}.
 */
public final class DefinitionException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final ErrorCode code;

  DefinitionException(ErrorCode code, Object... args) {
    super(code.format(args));
    this.code = code;
  }

  public ErrorCode code() {
    return code;
  }

  /** This fault as a diagnostic of the declaration written at {@code source}. */
  public Diagnostic diagnostic(@Nullable Object source) {
    return new Diagnostic(code, getMessage(), source, null);
  }
}
