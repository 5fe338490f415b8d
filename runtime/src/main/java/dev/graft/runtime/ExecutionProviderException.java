package dev.graft.runtime;

import org.jspecify.annotations.Nullable;

/** An execution provider (CUDA) was asked for but cannot be used with the ONNX Runtime on the classpath. */
public final class ExecutionProviderException extends GraftException {
  private static final long serialVersionUID = 1L;

  public ExecutionProviderException(String message, @Nullable Throwable cause) {
    super(RuntimeErrorCode.EXECUTION_PROVIDER, message, cause);
  }
}
