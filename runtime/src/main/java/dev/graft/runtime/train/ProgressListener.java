package dev.graft.runtime.train;

import java.io.PrintStream;

/**
 * Training progress on a stream: a {@link ProgressBar} per run, and a line when a run resumes, at
 * a step that was not finite and at a divergence warning.
 */
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

  @Override
  public void onNonFiniteStep(NonFiniteStep s) {
    if (interactive) {
      out.println();
    }
    out.println("step " + s.step() + " not finite (" + (s.lossFinite() ? "updated state" : "loss " + s.loss()) + "): "
        + switch (s.action()) {
          case STOP -> "stopping";
          case SKIP_BATCH -> "batch skipped";
          case LOWER_LEARNING_RATE -> "batch skipped, learning rate × " + s.learningRateScale() + " from now on";
        });
  }

  @Override
  public void onDivergence(Divergence d) {
    if (interactive) {
      out.println();
    }
    out.println(String.format(java.util.Locale.ROOT,
        "warning: step %d loss %.4g is above %.0f× the mean %.4g of the last %d steps (diverging?)",
        d.step(), d.loss(), d.factor(), d.runningMean(), d.window()));
  }
}
