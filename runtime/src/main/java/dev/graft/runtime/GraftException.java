package dev.graft.runtime;

import org.jspecify.annotations.Nullable;

/**
 * The unchecked exception of the Graft runtime. Messages start with a stable code
 * ({@code [GRAFT-R…]}, see {@link RuntimeErrorCode}); ONNX Runtime's own exceptions never leave
 * the runtime, they arrive here as the cause.
 */
public class GraftException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final RuntimeErrorCode code;

  public GraftException(RuntimeErrorCode code, String message) {
    this(code, message, null);
  }

  public GraftException(RuntimeErrorCode code, String message, @Nullable Throwable cause) {
    super(code.format(message), cause);
    this.code = code;
  }

  /** The stable code of this error, e.g. {@code GRAFT-R003}. */
  public String getCode() {
    return code.code();
  }

  /** The catalog entry of this error. */
  public RuntimeErrorCode getErrorCode() {
    return code;
  }
}
