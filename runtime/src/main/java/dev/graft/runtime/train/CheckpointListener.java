package dev.graft.runtime.train;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * Writes a training checkpoint after every epoch (atomically), recording the epoch and the run's
 * settings so that {@link Trainer} can resume from it, and the steps skipped as not finite and the
 * learning-rate factor when a {@link NonFinitePolicy} acted. A state that is not finite is never
 * written: the save refuses it ({@code GRAFT-R009}) and the previous checkpoint stays.
 */
final class CheckpointListener implements TrainingListener {
  private final Path file;
  private @Nullable Run run;
  private long skipped;
  private float rateScale = 1f;

  CheckpointListener(Path file) {
    this.file = file;
  }

  @Override
  public void onStart(Run value) {
    this.run = value;
    this.skipped = value.skippedSteps();
    this.rateScale = value.learningRateScale();
  }

  @Override
  public void onNonFiniteStep(NonFiniteStep step) {
    skipped = step.skippedSteps();
    rateScale = step.learningRateScale();
  }

  @Override
  public void onEpoch(TrainingResult.EpochResult epoch) {
    Run r = java.util.Objects.requireNonNull(run, "onStart was not called");
    Map<String, String> meta = new TreeMap<>(r.settings());
    meta.put(Trainer.EPOCH, Integer.toString(epoch.epoch()));
    if (skipped > 0) {
      meta.put(Trainer.SKIPPED, Long.toString(skipped));
    }
    if (rateScale != 1f) {
      meta.put(Trainer.RATE_SCALE, Float.toString(rateScale));
    }
    r.model().saveCheckpoint(file, meta);
  }
}
