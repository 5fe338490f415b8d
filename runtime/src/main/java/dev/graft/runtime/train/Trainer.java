package dev.graft.runtime.train;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.NonFiniteStepException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Loss;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * The training loop: seeded shuffling, batches padded to their longest sequence (optionally
 * bucketed by length), a learning-rate schedule and held-out accuracy after every epoch. What a
 * run reports goes to its {@link TrainingListener}s: the progress line on stderr, the per-epoch
 * checkpoint, and any the builder adds.
 *
 * <p>A step that is not finite is never committed (the model keeps its state from before it); the
 * run then stops, skips the batch or lowers the learning rate ({@link Builder#onNonFinite}). A
 * committed step whose loss is far above the running mean is reported as a divergence warning
 * ({@link Builder#divergence}), not an error.
 */
public final class Trainer {
  private final int batchSize;
  private final int epochs;
  private final LearningRate learningRate;
  private final long seed;
  private final boolean bucketing;
  private final int evalBatchSize;
  private final @Nullable Path checkpoint;
  private final NonFinitePolicy nonFinite;
  private final int divergenceWindow;
  private final double divergenceFactor;
  private final List<TrainingListener> listeners = new ArrayList<>();

  private Trainer(Builder b) {
    this.batchSize = b.batchSize;
    this.epochs = b.epochs;
    this.learningRate = b.learningRate;
    this.seed = b.seed;
    this.bucketing = b.bucketing;
    this.evalBatchSize = b.evalBatchSize;
    this.checkpoint = b.checkpoint;
    this.nonFinite = b.nonFinite;
    this.divergenceWindow = b.divergenceWindow;
    this.divergenceFactor = b.divergenceFactor;
    if (b.checkpoint != null) {
      listeners.add(new CheckpointListener(b.checkpoint));
    }
    if (b.progress != null) {
      listeners.add(new ProgressListener(b.progress, b.interactive != null ? b.interactive : ProgressBar.isTerminal()));
    }
    listeners.addAll(b.listeners);
  }

  public static Builder builder() {
    return new Builder();
  }

  /**
   * Settings of a training run; defaults: batch 16, 3 epochs, linear schedule peak 5e-4 with 10%
   * warmup, seed 42, stop at a non-finite step, divergence warning above 10× the mean of the last 20 steps.
   */
  public static final class Builder {
    private int batchSize = 16;
    private int epochs = 3;
    private LearningRate learningRate = LearningRate.linear(5e-4f, 0.1);
    private long seed = 42;
    private boolean bucketing = true;
    private int evalBatchSize = 64;
    private @Nullable PrintStream progress = System.err;
    private @Nullable Boolean interactive;
    private @Nullable Path checkpoint;
    private NonFinitePolicy nonFinite = NonFinitePolicy.STOP;
    private int divergenceWindow = 20;
    private double divergenceFactor = 10;
    private final List<TrainingListener> listeners = new ArrayList<>();

    private Builder() {}

    /** What the run does at a step that is not finite (never committed in any case); default {@link NonFinitePolicy#STOP}. */
    public Builder onNonFinite(NonFinitePolicy value) {
      this.nonFinite = java.util.Objects.requireNonNull(value, "policy");
      return this;
    }

    /**
     * The divergence warning's rule: a step whose loss exceeds {@code factor ×} the mean loss of
     * the previous {@code window} committed steps (once there are that many) is reported to the
     * listeners' {@link TrainingListener#onDivergence} and the progress output; default 20 steps, 10×.
     */
    public Builder divergence(int window, double factor) {
      if (window < 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "divergence window must be >= 1, got " + window);
      }
      if (!(factor > 1) || Double.isInfinite(factor)) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "divergence factor must be finite and > 1, got " + factor);
      }
      this.divergenceWindow = window;
      this.divergenceFactor = factor;
      return this;
    }

    public Builder batchSize(int value) {
      if (value < 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "batch size must be >= 1, got " + value);
      }
      this.batchSize = value;
      return this;
    }

    public Builder epochs(int value) {
      if (value < 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "epochs must be >= 1, got " + value);
      }
      this.epochs = value;
      return this;
    }

    /** A constant learning rate. */
    public Builder learningRate(float value) {
      this.learningRate = LearningRate.constant(value);
      return this;
    }

    /** A learning-rate schedule, e.g. {@link LearningRate#linear(float, double)}. */
    public Builder learningRate(LearningRate value) {
      this.learningRate = value;
      return this;
    }

    /** Seed of the shuffling (parameter initialization is seeded by {@link ModelOptions#seed()}). */
    public Builder seed(long value) {
      this.seed = value;
      return this;
    }

    /** Sort examples by length within buckets of 50 batches, so padding is small (default on). */
    public Builder bucketing(boolean value) {
      this.bucketing = value;
      return this;
    }

    public Builder evalBatchSize(int value) {
      if (value < 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "eval batch size must be >= 1, got " + value);
      }
      this.evalBatchSize = value;
      return this;
    }

    /** Where progress goes ({@code null}: nowhere); default stderr. */
    public Builder progress(@Nullable PrintStream value) {
      this.progress = value;
      return this;
    }

    /** Redraw one line in place ({@code true}) or print plain lines; default: whether there is a console. */
    public Builder interactive(boolean value) {
      this.interactive = value;
      return this;
    }

    /**
     * Writes a training checkpoint to {@code file} after every epoch (atomically), and resumes
     * from it when it exists: the epochs it records are skipped and training continues exactly
     * as an uninterrupted run would (shuffling is seeded per epoch, the schedule by step). A
     * checkpoint written by a run with other settings (batch size, epochs, seed, data size) is an
     * error, not a silent restart; to train on from a finished run, load its state with {@link
     * AdapterModel#loadCheckpoint} and start a new run. Default: none.
     */
    public Builder checkpoint(@Nullable Path file) {
      this.checkpoint = file;
      return this;
    }

    /** Adds a listener that hears every step and epoch, after the built-in checkpoint and progress listeners. */
    public Builder listener(TrainingListener value) {
      listeners.add(java.util.Objects.requireNonNull(value, "listener"));
      return this;
    }

    public Trainer build() {
      return new Trainer(this);
    }
  }

  /** Trains {@code model} on {@code train}, evaluating on {@code heldOut} (may be empty) after each epoch. */
  public TrainingResult fit(AdapterModel model, List<Example> train, List<Example> heldOut) {
    if (train.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "no training examples");
    }
    List<String> names = inputNames(model);
    int stepsPerEpoch = (train.size() + batchSize - 1) / batchSize;
    long totalSteps = (long) stepsPerEpoch * epochs;
    List<TrainingResult.EpochResult> results = new ArrayList<>();
    long start = System.nanoTime();
    long trainNanos = 0;
    long examples = 0;
    Map<String, String> settings = new TreeMap<>();
    settings.put("batch_size", Integer.toString(batchSize));
    settings.put("epochs", Integer.toString(epochs));
    settings.put("shuffle_seed", Long.toString(seed));
    settings.put("steps_per_epoch", Integer.toString(stepsPerEpoch));
    settings.put("train_examples", Integer.toString(train.size()));
    Resumed resumed = resume(model, settings, stepsPerEpoch);
    int epochsDone = resumed.epochs;
    long skipped = resumed.skippedSteps;
    float rateScale = resumed.learningRateScale;
    TrainingListener.Run run = new TrainingListener.Run(model, epochs, stepsPerEpoch, totalSteps, epochsDone + 1,
        settings, epochsDone > 0 ? checkpoint : null, skipped, rateScale);
    listeners.forEach(l -> l.onStart(run));
    long firstStep = (long) epochsDone * stepsPerEpoch;
    long step = firstStep;
    float lastMean = Float.NaN;
    ArrayDeque<Float> recent = new ArrayDeque<>();
    double recentSum = 0;
    for (int epoch = epochsDone + 1; epoch <= epochs; epoch++) {
      List<List<Example>> batches = batches(train, new Random(seed * 31 + epoch));
      long epochStart = System.nanoTime();
      double lossSum = 0;
      int done = 0;
      int epochExamples = 0;
      int inEpoch = 0;
      for (List<Example> b : batches) {
        Batch batch = Batch.of(b, names);
        float rate = learningRate.at(step, totalSteps) * rateScale;
        inEpoch++;
        float loss;
        try {
          loss = model.trainStep(batch, rate);
        } catch (NonFiniteStepException e) {
          step++;
          if (nonFinite != NonFinitePolicy.STOP) {
            skipped++;
          }
          if (nonFinite == NonFinitePolicy.LOWER_LEARNING_RATE) {
            rateScale *= 0.5f;
          }
          TrainingListener.NonFiniteStep event = new TrainingListener.NonFiniteStep(step, epoch, inEpoch, e.getLoss(),
              e.isLossFinite(), rate, nonFinite, skipped, rateScale, e.getMessage());
          listeners.forEach(l -> l.onNonFiniteStep(event));
          if (nonFinite == NonFinitePolicy.STOP) {
            throw e;
          }
          continue;
        }
        step++;
        if (recent.size() == divergenceWindow) {
          double mean = recentSum / divergenceWindow;
          if (loss > divergenceFactor * mean) {
            TrainingListener.Divergence event =
                new TrainingListener.Divergence(step, epoch, loss, mean, divergenceWindow, divergenceFactor);
            listeners.forEach(l -> l.onDivergence(event));
          }
          recentSum -= recent.removeFirst();
        }
        recent.addLast(loss);
        recentSum += loss;
        lossSum += loss;
        done++;
        epochExamples += b.size();
        double secs = (System.nanoTime() - epochStart) / 1e9;
        TrainingListener.Step event = new TrainingListener.Step(step, epoch, inEpoch, batches.size(), loss, b.size(), rate,
            lossSum / done, epochExamples / Math.max(secs, 1e-9));
        listeners.forEach(l -> l.onStep(event));
      }
      long epochNanos = System.nanoTime() - epochStart;
      trainNanos += epochNanos;
      examples += epochExamples;
      lastMean = done == 0 ? Float.NaN : (float) (lossSum / done);
      double acc = heldOut.isEmpty() ? Double.NaN : evaluate(model, heldOut);
      TrainingResult.EpochResult result =
          new TrainingResult.EpochResult(epoch, lastMean, acc, Duration.ofNanos(epochNanos));
      results.add(result);
      listeners.forEach(l -> l.onEpoch(result));
    }
    double trainSecs = Math.max(trainNanos / 1e9, 1e-9);
    long stepsRun = step - firstStep;
    return new TrainingResult(
        lastMean, results, stepsRun, stepsRun / trainSecs, examples / trainSecs,
        Duration.ofNanos(System.nanoTime() - start));
  }

  /** The checkpoint metadata key of the epochs done. */
  static final String EPOCH = "epoch";
  /** The checkpoint metadata key of the steps skipped as not finite (absent: none). */
  static final String SKIPPED = "skipped_steps";
  /** The checkpoint metadata key of the factor on the schedule's rate (absent: 1). */
  static final String RATE_SCALE = "learning_rate_scale";

  private record Resumed(int epochs, long skippedSteps, float learningRateScale) {}

  /** Loads the checkpoint if there is one; returns what it has done. */
  private Resumed resume(AdapterModel model, Map<String, String> settings, int stepsPerEpoch) {
    if (checkpoint == null || !Files.exists(checkpoint)) {
      return new Resumed(0, 0, 1f);
    }
    Map<String, String> meta = model.loadCheckpoint(checkpoint);
    String src = checkpoint.toString();
    for (Map.Entry<String, String> e : settings.entrySet()) {
      if (!e.getValue().equals(meta.get(e.getKey()))) {
        throw new FormatException(src, "was written by a run with " + e.getKey() + " = " + meta.get(e.getKey())
            + ", this run has " + e.getValue() + "; use another checkpoint file or the same settings and data");
      }
    }
    int done;
    long skipped;
    float scale;
    try {
      done = Integer.parseInt(String.valueOf(meta.get(EPOCH)));
      skipped = Long.parseLong(meta.getOrDefault(SKIPPED, "0"));
      scale = Float.parseFloat(meta.getOrDefault(RATE_SCALE, "1"));
    } catch (NumberFormatException e) {
      throw new FormatException(src, "epoch, skipped_steps and learning_rate_scale must be numbers, got "
          + meta.get(EPOCH) + ", " + meta.get(SKIPPED) + " and " + meta.get(RATE_SCALE), e);
    }
    if (!(scale > 0 && scale <= 1)) {
      throw new FormatException(src, "learning_rate_scale must be in (0, 1], got " + scale);
    }
    if (skipped < 0 || model.getStep() != (long) done * stepsPerEpoch - skipped) {
      throw new FormatException(src, "records " + model.getStep() + " steps and " + skipped + " skipped, expected "
          + done + " epochs × " + stepsPerEpoch + " steps");
    }
    return new Resumed(done, skipped, scale);
  }

  /**
   * Held-out accuracy of {@code model} on {@code examples}: argmax of the logits against the label
   * (classification), or the fraction of labels whose logit sign matches target > 0.5
   * (multi-label); NaN for regression, causal LM and token-classification grafts, and for no examples.
   */
  public double evaluate(AdapterModel model, List<Example> examples) {
    if (examples.isEmpty()
        || model.getLoss() == Loss.MEAN_SQUARED_ERROR || model.getLoss() == Loss.CAUSAL_LM_CROSS_ENTROPY
        || model.getLoss() == Loss.TOKEN_CROSS_ENTROPY) {
      return Double.NaN;
    }
    boolean multiLabel = model.getLoss() == Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
    long total = 0;
    List<String> names = inputNames(model);
    List<Example> sorted = new ArrayList<>(examples);
    sorted.sort(Comparator.comparingInt(Example::length));
    long correct = 0;
    for (int i = 0; i < sorted.size(); i += evalBatchSize) {
      Batch batch = Batch.of(sorted.subList(i, Math.min(sorted.size(), i + evalBatchSize)), names);
      float[][] logits = model.predict(batch.feed());
      for (int r = 0; r < logits.length; r++) {
        if (multiLabel) {
          for (int c = 0; c < logits[r].length; c++) {
            correct += (logits[r][c] > 0) == (batch.targets()[r][c] > 0.5f) ? 1 : 0;
            total++;
          }
        } else {
          correct += argmax(logits[r]) == batch.labels()[r] ? 1 : 0;
          total++;
        }
      }
    }
    return (double) correct / total;
  }

  static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }

  private static List<String> inputNames(AdapterModel model) {
    return model.getManifest().getInputsList().stream().map(HostInput::getName).toList();
  }

  /** The epoch's batches: shuffled; with bucketing, sorted by length within buckets, then batch order shuffled. */
  List<List<Example>> batches(List<Example> train, Random rng) {
    List<Example> order = new ArrayList<>(train);
    Collections.shuffle(order, rng);
    if (bucketing) {
      int bucket = batchSize * 50;
      for (int i = 0; i < order.size(); i += bucket) {
        order.subList(i, Math.min(order.size(), i + bucket)).sort(Comparator.comparingInt(Example::length));
      }
    }
    List<List<Example>> batches = new ArrayList<>();
    for (int i = 0; i < order.size(); i += batchSize) {
      batches.add(List.copyOf(order.subList(i, Math.min(order.size(), i + batchSize))));
    }
    if (bucketing) {
      Collections.shuffle(batches, rng);
    }
    return batches;
  }
}
