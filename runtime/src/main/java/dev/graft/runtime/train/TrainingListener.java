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
   * A run about to start.
   *
   * @param model the model being trained
   * @param epochs the run's number of epochs
   * @param stepsPerEpoch training steps per epoch
   * @param totalSteps training steps of the whole run (resumed epochs included)
   * @param firstEpoch the 1-based epoch the run starts with (above 1 when resumed)
   * @param settings the run's settings as its checkpoints record them (batch size, epochs, seed, data size)
   * @param resumedFrom the checkpoint the run resumes from, or {@code null}
   */
  record Run(
      AdapterModel model,
      int epochs,
      int stepsPerEpoch,
      long totalSteps,
      int firstEpoch,
      Map<String, String> settings,
      @Nullable Path resumedFrom) {
    public Run {
      settings = Map.copyOf(settings);
    }
  }

  /**
   * One training step, just taken.
   *
   * @param step the 1-based step number in the run (resumed steps included), as {@link AdapterModel#getStep()} after it
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
}
