package dev.graft.compiler.kinds;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;

/**
 * An adapter kind found as a {@code java.util.ServiceLoader} service cannot be registered
 * (GRAFT094): its id or annotation is already taken by another kind (both classes named), or it
 * cannot be loaded. Until the class path is fixed, {@link AdapterKinds} answers every question
 * with this error, so no graft is compiled with an unintended kind.
 */
public final class AdapterKindLoadException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  AdapterKindLoadException(String id, String className, String why, Throwable cause) {
    super(ErrorCode.ADAPTER_KIND_CONFLICT.format(id, className, why), cause);
  }

  AdapterKindLoadException(String id, String className, String why) {
    super(ErrorCode.ADAPTER_KIND_CONFLICT.format(id, className, why));
  }

  /** The same fault, thrown again from a later call (so each stack trace shows its caller). */
  AdapterKindLoadException(AdapterKindLoadException first) {
    super(first.getMessage(), first);
  }

  /** This fault as a diagnostic with no source (it is a fault of the class path, not of one declaration). */
  public Diagnostic diagnostic() {
    return new Diagnostic(ErrorCode.ADAPTER_KIND_CONFLICT, getMessage(), null, null);
  }
}
