package dev.graft.runtime.train;

import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * Writes a training checkpoint after every epoch (atomically), recording the epoch and the run's
 * settings so that {@link Trainer} can resume from it.
 */
final class CheckpointListener implements TrainingListener {
  private final Path file;
  private @Nullable Run run;

  CheckpointListener(Path file) {
    this.file = file;
  }

  @Override
  public void onStart(Run value) {
    this.run = value;
  }

  @Override
  public void onEpoch(TrainingResult.EpochResult epoch) {
    Run r = java.util.Objects.requireNonNull(run, "onStart was not called");
    Map<String, String> meta = new TreeMap<>(r.settings());
    meta.put(Trainer.EPOCH, Integer.toString(epoch.epoch()));
    r.model().saveCheckpoint(file, meta);
  }
}
