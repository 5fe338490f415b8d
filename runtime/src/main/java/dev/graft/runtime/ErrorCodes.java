package dev.graft.runtime;

/** The stable codes of runtime errors; the compiler's codes are {@code GRAFTnnn}, the runtime's {@code GRAFT-Rnnn}. */
public final class ErrorCodes {
  /** ONNX Runtime failed (session creation or run); the cause is the OrtException. */
  public static final String ONNX_RUNTIME = "GRAFT-R001";
  /** A tensor's shape or element type is not what is expected. */
  public static final String TENSOR_MISMATCH = "GRAFT-R002";
  /** A file or resource is malformed or does not match the manifest. */
  public static final String FORMAT = "GRAFT-R003";
  /** An execution provider is not available. */
  public static final String EXECUTION_PROVIDER = "GRAFT-R004";
  /** A file or resource could not be read or written. */
  public static final String IO = "GRAFT-R005";
  /** A name (parameter, input) is unknown. */
  public static final String UNKNOWN_NAME = "GRAFT-R006";
  /** An argument is out of range (batch size, learning rate, labels …). */
  public static final String ARGUMENT = "GRAFT-R007";
  /** The model was used after close. */
  public static final String CLOSED = "GRAFT-R008";

  private ErrorCodes() {}
}
