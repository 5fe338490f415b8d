package dev.graft.runtime.train;

import java.time.Duration;
import java.util.List;

/**
 * What a {@link Trainer} run did.
 *
 * @param finalLoss mean training loss of the last epoch
 * @param epochs one entry per epoch
 * @param steps training steps taken
 * @param stepsPerSecond training steps per second of training time (evaluation excluded)
 * @param examplesPerSecond training examples per second of training time
 * @param wallTime total time, evaluation included
 */
public record TrainingResult(
    float finalLoss,
    List<EpochResult> epochs,
    long steps,
    double stepsPerSecond,
    double examplesPerSecond,
    Duration wallTime) {
  public TrainingResult {
    epochs = List.copyOf(epochs);
  }

  /**
   * One epoch.
   *
   * @param epoch 1-based epoch number
   * @param meanLoss mean training loss over the epoch's steps
   * @param heldOutAccuracy accuracy on the held-out set after the epoch; NaN without one
   * @param time the epoch's training time
   */
  public record EpochResult(int epoch, float meanLoss, double heldOutAccuracy, Duration time) {}

  /** Held-out accuracy after each epoch. */
  public List<Double> accuracies() {
    return epochs.stream().map(EpochResult::heldOutAccuracy).toList();
  }

  /** Held-out accuracy after the last epoch (NaN without a held-out set). */
  public double finalAccuracy() {
    return epochs.isEmpty() ? Double.NaN : epochs.get(epochs.size() - 1).heldOutAccuracy();
  }
}
