package dev.graft.runtime.train;

import dev.graft.runtime.AdapterModel;
import java.nio.file.Path;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * Hears a {@link Trainer} run: its start, every training step and every epoch (after the
 * held-out evaluation). The progress output and the per-epoch checkpoint are listeners; add your
 * own with {@link Trainer.Builder#listener}. Listeners are called in order, on the training
 * thread; an exception from one ends the run.
 */
public interface TrainingListener {
  /** Called once before the first step (of a fresh run, or of a run resumed from a checkpoint). */
  default void onStart(Run run) {}

  /** Called after every training step. */
  default void onStep(Step step) {}

  /** Called after every epoch, once its held-out accuracy is known. */
  default void onEpoch(TrainingResult.EpochResult epoch) {}

  /**
   * Called when a step was not finite and was not committed, before the run's {@link
   * NonFinitePolicy} acts (with {@link NonFinitePolicy#STOP}, the run then ends with its exception).
   */
  default void onNonFiniteStep(NonFiniteStep step) {}

  /**
   * Called when a step's loss is far above its running mean (a warning: the step was committed and
   * the run goes on). The rule: the loss exceeds {@code factor ×} the mean of the previous {@code
   * window} committed steps' losses, once there are that many ({@link Trainer.Builder#divergence}).
   */
  default void onDivergence(Divergence divergence) {}

  /**
   * A run about to start.
   *
   * @param model the model being trained
   * @param epochs the run's number of epochs
   * @param stepsPerEpoch training steps per epoch
   * @param totalSteps training steps of the whole run (resumed epochs included)
   * @param firstEpoch the 1-based epoch the run starts with (above 1 when resumed)
   * @param settings the run's settings as its checkpoints record them (batch size, epochs, seed, data size)
   * @param resumedFrom the checkpoint the run resumes from, or {@code null}
   * @param skippedSteps steps left out as not finite before the run starts (recorded by the checkpoint resumed from)
   * @param learningRateScale the factor on the schedule's rate the run starts with (below 1 after
   *     {@link NonFinitePolicy#LOWER_LEARNING_RATE} acted in the epochs resumed from)
   */
  record Run(
      AdapterModel model,
      int epochs,
      int stepsPerEpoch,
      long totalSteps,
      int firstEpoch,
      Map<String, String> settings,
      @Nullable Path resumedFrom,
      long skippedSteps,
      float learningRateScale) {
    public Run {
      settings = Map.copyOf(settings);
    }
  }

  /**
   * One training step, just taken.
   *
   * @param step the 1-based step number in the run (resumed and skipped steps included); {@link
   *     AdapterModel#getStep()} after it is this minus the steps skipped as not finite
   * @param epoch the 1-based epoch
   * @param stepInEpoch the 1-based step within the epoch
   * @param stepsInEpoch the epoch's number of steps
   * @param loss the batch loss before the update
   * @param examples the batch's number of examples
   * @param learningRate the learning rate of the step
   * @param epochMeanLoss mean loss of the epoch's steps so far
   * @param examplesPerSecond training examples per second in the epoch so far
   */
  record Step(
      long step,
      int epoch,
      int stepInEpoch,
      int stepsInEpoch,
      float loss,
      int examples,
      float learningRate,
      double epochMeanLoss,
      double examplesPerSecond) {}

  /**
   * A training step that was not finite and not committed.
   *
   * @param step the 1-based step number in the run (as {@link Step#step()} would have been)
   * @param epoch the 1-based epoch
   * @param stepInEpoch the 1-based step within the epoch
   * @param loss the step's loss (finite when the updated state was what was not)
   * @param lossFinite whether the loss was finite (then the updated parameters or moments were not)
   * @param learningRate the learning rate of the step
   * @param action what the run does now
   * @param skippedSteps steps left out so far, this one included when the run goes on
   * @param learningRateScale the factor on the schedule's rate from the next step on
   * @param message the step's error message (with its code)
   */
  record NonFiniteStep(
      long step,
      int epoch,
      int stepInEpoch,
      float loss,
      boolean lossFinite,
      float learningRate,
      NonFinitePolicy action,
      long skippedSteps,
      float learningRateScale,
      String message) {}

  /**
   * A committed step whose loss is far above the running mean of the steps before it.
   *
   * @param step the 1-based step number in the run (as {@link Step#step()})
   * @param epoch the 1-based epoch
   * @param loss the step's loss
   * @param runningMean mean loss of the previous {@code window} committed steps
   * @param window how many steps the mean is over
   * @param factor the threshold: {@code loss > factor × runningMean}
   */
  record Divergence(long step, int epoch, float loss, double runningMean, int window, double factor) {}
}
