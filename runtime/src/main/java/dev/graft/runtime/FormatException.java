package dev.graft.runtime;

import org.jspecify.annotations.Nullable;

/** A file (safetensors, adapter_config.json, manifest, ONNX model) is malformed or does not match. */
public final class FormatException extends GraftException {
  private static final long serialVersionUID = 1L;

  private final String source;

  public FormatException(String source, String message) {
    this(source, message, null);
  }

  public FormatException(String source, String message, @Nullable Throwable cause) {
    super(RuntimeErrorCode.FORMAT, source + ": " + message, cause);
    this.source = source;
  }

  /** The file or resource the problem is in. */
  public String getSource() {
    return source;
  }
}
