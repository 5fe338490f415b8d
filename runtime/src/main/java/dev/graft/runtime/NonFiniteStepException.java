package dev.graft.runtime;

/**
 * A training step whose loss, or whose updated parameters and AdamW moments, are NaN or
 * infinite. The step was not committed: the parameters, the moments and the step count are those
 * before it. Carries the step's number and which part was not finite.
 */
public final class NonFiniteStepException extends GraftException {
  private static final long serialVersionUID = 1L;

  private final long step;
  private final float loss;

  public NonFiniteStepException(long step, float loss) {
    super(RuntimeErrorCode.NON_FINITE, "training step " + step + ": "
        + (Float.isFinite(loss)
            ? "the loss is " + loss + " but the updated parameters or AdamW moments are not finite"
            : "the loss is " + loss)
        + "; the step was not committed (parameters, moments and step count unchanged)"
        + "; lower the learning rate or check the batch");
    this.step = step;
    this.loss = loss;
  }

  /** The 1-based number the refused step would have had (the model's step count + 1). */
  public long getStep() {
    return step;
  }

  /** The step's loss (NaN or infinite when {@link #isLossFinite()} is false). */
  public float getLoss() {
    return loss;
  }

  /** Whether the loss was finite, so that the updated state was what was not. */
  public boolean isLossFinite() {
    return Float.isFinite(loss);
  }
}
