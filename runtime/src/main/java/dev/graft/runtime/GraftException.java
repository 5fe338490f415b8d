package dev.graft.runtime;

import org.jspecify.annotations.Nullable;

/**
 * The unchecked exception of the Graft runtime. Messages start with a stable code
 * ({@code [GRAFT-R…]}); ONNX Runtime's own exceptions never leave the runtime, they arrive
 * here as the cause.
 */
public class GraftException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final String code;

  public GraftException(String code, String message) {
    this(code, message, null);
  }

  public GraftException(String code, String message, @Nullable Throwable cause) {
    super("[" + code + "] " + message, cause);
    this.code = code;
  }

  /** The stable code of this error, e.g. {@code GRAFT-R010}. */
  public String getCode() {
    return code;
  }
}
