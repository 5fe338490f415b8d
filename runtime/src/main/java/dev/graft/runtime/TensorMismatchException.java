package dev.graft.runtime;

/**
 * A tensor given to (or read by) the runtime does not have the shape or element type that the
 * graph or file expects. Carries the tensor's name, what was expected and what was given.
 */
public final class TensorMismatchException extends GraftException {
  private static final long serialVersionUID = 1L;

  private final String tensorName;
  private final String expected;
  private final String given;

  public TensorMismatchException(String tensorName, String expected, String given) {
    this(tensorName, expected, given, "");
  }

  public TensorMismatchException(String tensorName, String expected, String given, String detail) {
    super(
        RuntimeErrorCode.TENSOR_MISMATCH,
        "tensor '" + tensorName + "': expected " + expected + ", given " + given
            + (detail.isEmpty() ? "" : " (" + detail + ")"));
    this.tensorName = tensorName;
    this.expected = expected;
    this.given = given;
  }

  public String getTensorName() {
    return tensorName;
  }

  public String getExpected() {
    return expected;
  }

  public String getGiven() {
    return given;
  }
}
