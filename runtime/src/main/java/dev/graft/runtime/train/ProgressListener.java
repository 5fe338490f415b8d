package dev.graft.runtime.train;

import java.io.PrintStream;

/** Training progress on a stream: a {@link ProgressBar} per run, and a line when a run resumes. */
final class ProgressListener implements TrainingListener {
  private final PrintStream out;
  private final boolean interactive;
  private ProgressBar bar;
  private int epochs;

  ProgressListener(PrintStream out, boolean interactive) {
    this.out = out;
    this.interactive = interactive;
    this.bar = new ProgressBar(out, interactive);
  }

  @Override
  public void onStart(Run run) {
    bar = new ProgressBar(out, interactive);
    epochs = run.epochs();
    if (run.resumedFrom() != null) {
      out.println("resuming from " + run.resumedFrom() + " after epoch " + (run.firstEpoch() - 1));
    }
  }

  @Override
  public void onStep(Step s) {
    bar.update(s.epoch(), epochs, s.stepInEpoch(), s.stepsInEpoch(), s.epochMeanLoss(), s.examplesPerSecond());
  }

  @Override
  public void onEpoch(TrainingResult.EpochResult e) {
    bar.endEpoch(e.epoch(), epochs, e.meanLoss(), e.heldOutAccuracy(), e.time().toNanos() / 1e9);
  }
}
