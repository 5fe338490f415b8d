package dev.graft.runtime.train;

/**
 * What a {@link Trainer} does when a training step is not finite (its loss or its updated
 * parameters and moments are NaN or infinite). The step is never committed: the model keeps the
 * state from before it, and a checkpoint is never written from a non-finite state.
 */
public enum NonFinitePolicy {
  /** The run ends with the step's {@link dev.graft.runtime.NonFiniteStepException} (the default). */
  STOP,
  /** The batch is left out and the run goes on with the next one, at the same learning rate. */
  SKIP_BATCH,
  /**
   * The batch is left out and the learning rate is halved for the rest of the run (the schedule's
   * rate times 0.5 per non-finite step so far).
   */
  LOWER_LEARNING_RATE
}
