package dev.graft.runtime.train;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.function.ToDoubleFunction;
import org.jspecify.annotations.Nullable;

/**
 * Keeps training checkpoints in a bounded folder while a {@link Trainer} runs (add it with {@link
 * Trainer.Builder#listener}): one every {@code N} steps, at most the last {@code K}, each with its
 * step, the mean training loss of its window (the steps since the checkpoint before it) and,
 * when asked, a held-out metric measured on the saved state. {@link KeptCheckpoints#read} lists
 * them; {@link CheckpointAverage} averages them.
 *
 * <p><b>Bounded and crash-safe.</b> The folder never holds more than {@code K} checkpoint files
 * (plus the temporary file of the one being written), and its {@code index.json} always lists
 * files that exist and are complete. A new checkpoint, with {@code K} already kept, is taken in
 * three atomic steps: the index without the oldest is written and the oldest file deleted; the new
 * file is written; the index with it is written. A crash between them leaves a loadable folder
 * (with one checkpoint fewer in it, or a file the index does not list yet, which the next start
 * deletes).
 *
 * <p><b>Resuming.</b> A run resumed from its trainer checkpoint ({@link Trainer.Builder#checkpoint})
 * keeps the folder's checkpoints up to the step it resumes at (those after it are of the steps it
 * redoes, and are deleted). A folder that holds another run's checkpoints (another graft, other
 * settings, or any checkpoints when the run starts fresh) is an error ({@code GRAFT-R141}), not
 * mixed in.
 */
public final class CheckpointKeeper implements TrainingListener {
  private final Path folder;
  private final int every;
  private final int keep;
  private final @Nullable String metricName;
  private final @Nullable ToDoubleFunction<AdapterModel> metric;
  private @Nullable Run run;
  private @Nullable KeptCheckpoints kept;
  private long nextSave;
  private double windowLoss;
  private int windowSteps;

  private CheckpointKeeper(Builder b) {
    this.folder = b.folder;
    this.every = b.every;
    this.keep = b.keep;
    this.metricName = b.metricName;
    this.metric = b.metric;
  }

  /** A keeper writing into {@code folder}; defaults: a checkpoint every step, the last 5 kept, no metric. */
  public static Builder into(Path folder) {
    return new Builder(Objects.requireNonNull(folder, "folder"));
  }

  /** Settings of a {@link CheckpointKeeper}. */
  public static final class Builder {
    private final Path folder;
    private int every = 1;
    private int keep = 5;
    private @Nullable String metricName;
    private @Nullable ToDoubleFunction<AdapterModel> metric;

    private Builder(Path folder) {
      this.folder = folder;
    }

    /** A checkpoint after every {@code steps} steps (the run's steps {@code N, 2N, …}); default 1. */
    public Builder every(int steps) {
      if (steps < 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "checkpoint interval must be >= 1 steps, got " + steps);
      }
      this.every = steps;
      return this;
    }

    /** Keeps the last {@code k} checkpoints, deleting older ones; default 5. */
    public Builder keepLast(int k) {
      if (k < 1 || k > KeptCheckpoints.MAX_KEEP) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT,
            "checkpoints kept must be in [1, " + KeptCheckpoints.MAX_KEEP + "], got " + k);
      }
      this.keep = k;
      return this;
    }

    /**
     * Measures {@code metric} on the model at every checkpoint (e.g. held-out accuracy, {@code m ->
     * trainer.evaluate(m, heldOut)}) and records it as {@code name}; it must be finite.
     */
    public Builder metric(String name, ToDoubleFunction<AdapterModel> metric) {
      if (name.isBlank()) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "a metric needs a name, got '" + name + "'");
      }
      this.metricName = name;
      this.metric = Objects.requireNonNull(metric, "metric");
      return this;
    }

    public CheckpointKeeper build() {
      return new CheckpointKeeper(this);
    }
  }

  /** The folder the checkpoints are kept in. */
  public Path folder() {
    return folder;
  }

  /** The checkpoints kept so far (after {@link #onStart}). */
  public KeptCheckpoints kept() {
    return Objects.requireNonNull(kept, "the run has not started");
  }

  @Override
  public void onStart(Run value) {
    this.run = value;
    long startStep = (long) (value.firstEpoch() - 1) * value.stepsPerEpoch();
    String graft = value.model().getManifest().getName();
    KeptCheckpoints fresh = new KeptCheckpoints(folder, graft, keep, every, metricName, value.settings(), List.of());
    List<KeptCheckpoints.Checkpoint> carried = List.of();
    if (KeptCheckpoints.exists(folder)) {
      KeptCheckpoints old = KeptCheckpoints.read(folder);
      if (!old.checkpoints().isEmpty()) {
        String why = value.resumedFrom() == null ? "this run starts fresh"
            : !old.graft().equals(graft) ? "they are of graft '" + old.graft() + "', this run trains '" + graft + "'"
            : !old.settings().equals(value.settings()) ? "their run had settings " + new TreeMap<>(old.settings())
                + ", this run has " + new TreeMap<>(value.settings())
            : !Objects.equals(old.metricName(), metricName) || old.everySteps() != every
                ? "they were kept every " + old.everySteps() + " steps with metric " + old.metricName()
                    + ", this keeper keeps every " + every + " with metric " + metricName
            : null;
        if (why != null) {
          throw new GraftException(RuntimeErrorCode.CHECKPOINT_FOLDER_IN_USE, folder.toAbsolutePath() + " holds "
              + old.checkpoints().size() + " kept checkpoints of another run (" + why
              + "); use an empty folder or delete this one");
        }
        carried = old.checkpoints().stream().filter(c -> c.step() <= startStep).toList();
        carried = carried.subList(Math.max(0, carried.size() - keep), carried.size());
      }
    }
    kept = fresh.with(carried);
    try {
      Files.createDirectories(folder);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot create " + folder.toAbsolutePath() + ": " + e, e);
    }
    kept.write();
    deleteUnlisted();
    nextSave = (startStep / every + 1) * every;
    windowLoss = 0;
    windowSteps = 0;
  }

  @Override
  public void onStep(Step step) {
    windowLoss += step.loss();
    windowSteps++;
    if (step.step() >= nextSave) {
      save(step);
      nextSave = (step.step() / every + 1) * every;
    }
  }

  private void save(Step step) {
    Run r = Objects.requireNonNull(run, "onStart was not called");
    KeptCheckpoints k = Objects.requireNonNull(kept);
    Double measured = null;
    if (metric != null) {
      double m = metric.applyAsDouble(r.model());
      if (!Double.isFinite(m)) {
        throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS, "metric '" + metricName + "' is " + m
            + " at step " + step.step() + ", expected a finite number (is the held-out set empty?)");
      }
      measured = m;
    }
    List<KeptCheckpoints.Checkpoint> list = new ArrayList<>(k.checkpoints());
    while (list.size() >= keep) {
      KeptCheckpoints.Checkpoint oldest = list.remove(0);
      k = k.with(list);
      k.write();
      delete(oldest.file());
    }
    Path file = folder.resolve(KeptCheckpoints.fileName(step.step()));
    double loss = windowLoss / windowSteps;
    Map<String, String> meta = new TreeMap<>(r.settings());
    meta.put("kept_step", Long.toString(step.step()));
    meta.put("kept_train_loss", Double.toString(loss));
    r.model().saveCheckpoint(file, meta);
    list.add(new KeptCheckpoints.Checkpoint(step.step(), step.epoch(), file, loss, windowSteps, measured));
    kept = k.with(list);
    kept.write();
    windowLoss = 0;
    windowSteps = 0;
  }

  /** Deletes checkpoint files (and their temporaries) that the index does not list: what a crash left. */
  private void deleteUnlisted() {
    List<String> listed = Objects.requireNonNull(kept).checkpoints().stream()
        .map(c -> c.file().getFileName().toString()).toList();
    List<Path> stray = new ArrayList<>();
    try (DirectoryStream<Path> s = Files.newDirectoryStream(folder)) {
      for (Path p : s) {
        String name = p.getFileName().toString();
        String target = name.startsWith(".") && name.contains(".graft-tmp-")
            ? name.substring(1, name.indexOf(".graft-tmp-")) : name;
        if (KeptCheckpoints.isCheckpointFile(target) && !listed.contains(name)) {
          stray.add(p);
        }
      }
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot list " + folder.toAbsolutePath() + ": " + e, e);
    }
    stray.forEach(CheckpointKeeper::delete);
  }

  private static void delete(Path file) {
    try {
      Files.deleteIfExists(file);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot delete " + file.toAbsolutePath() + ": " + e, e);
    }
  }
}
