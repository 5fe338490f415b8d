package dev.graft.dsl.continual;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * SEMA's continual-learning loop (Wang et al., "Self-Expansion of Pre-trained Models with Mixture
 * of Adapters for Continual Learning", CVPR 2025; reference code {@code huiyiwang01/SEMA-CL},
 * {@code models/sema.py}) over the {@code sema} kind: tasks arrive one at a time. The first adds one
 * adapter to the pool of every chosen layer and trains them together. Each later one first freezes
 * every earlier adapter and router column, then runs detection passes over its training data: the
 * data in shuffled batches of {@code detectBatchSize}, and for each batch in turn and each layer in
 * ascending order, the mean z-score of each of the layer's descriptors over the batch; the first
 * layer (not yet expanded in this task) where <em>every</em> descriptor's batch mean exceeds {@code
 * threshold} gets one adapter and one router column, which are then trained (the graft recompiled
 * with the larger pool, every earlier parameter loaded by name, all else frozen by {@code
 * frozenPerLayer}), and a new pass starts on the model so changed, until a pass expands nothing. A
 * task that expands nothing trains only its head block. Each task trains a head block of its own
 * classes ({@link TaskHead}), fresh at the task's start and kept, frozen, after it; {@link
 * #taskAccuracy} predicts within a task's block, {@link #accuracy} over every block (class-incremental).
 *
 * <p>Features: a layer's descriptors read that layer's own pool-site input x (the feed-forward
 * block's input), each example's mean over the tokens its attention mask keeps, read with {@link
 * AdapterModel#siteFeatures} from the tensor each pool's down projection records as its manifest
 * {@code site_input}. Each added adapter gets a {@link Descriptor} fitted on its layer's features
 * of the task's training data after its training ({@code descriptorFit}, by default SGD with the
 * reference's schedule).
 *
 * <p>Each task prints one progress line (the z-scores per layer, the layers expanded in order, the
 * pool sizes, the trained parameters). A {@code Sema} holds the current model; close it when done.
 */
public final class Sema implements AutoCloseable {
  private final Builder options;
  private final int[] pools;
  private final List<List<Descriptor>> descriptors = new ArrayList<>();
  private boolean rankCapWarned;
  private final List<TaskReport> reports = new ArrayList<>();
  private final TaskHead head = new TaskHead();
  /** The classes of the task being learned: the compiled head's outputs. */
  private int taskClasses;
  private @Nullable AdapterModel model;

  private Sema(Builder options) {
    this.options = options;
    this.pools = new int[options.layers.size()];
    options.layers.forEach(l -> descriptors.add(new ArrayList<>()));
  }

  /** A loop on {@code host}; the builder's {@code layers} must be set. */
  public static Builder builder(HostModel host) {
    return new Builder(host);
  }

  /**
   * What one task did.
   *
   * @param task the task's name
   * @param zScores per chosen layer, the mean z-score of each of its descriptors over the whole
   *     training data, in the detection pass that decided the layer (the one that expanded it, else
   *     the last); empty lists for the first task
   * @param detectionScores per chosen layer, the largest over that pass's batches of the smallest of
   *     its descriptors' batch means: what is compared with the threshold (NaN for the first task)
   * @param expanded the layers that got an adapter, in the order they got it
   * @param pools the pool size of each chosen layer after the task
   * @param trainedParameters the values the task trained, summed over its trainings (new adapters,
   *     their router columns, the head)
   * @param heldOutAccuracy the task-aware accuracy on the task's held-out examples after training
   *     (the prediction within the task's own classes)
   * @param stepsPerSecond the training steps per second, the mean over the task's trainings
   */
  public record TaskReport(String task, List<List<Double>> zScores, List<Double> detectionScores,
      List<Integer> expanded, List<Integer> pools, long trainedParameters, double heldOutAccuracy,
      double stepsPerSecond) {
    public TaskReport {
      zScores = zScores.stream().map(List::copyOf).toList();
      detectionScores = List.copyOf(detectionScores);
      expanded = List.copyOf(expanded);
      pools = List.copyOf(pools);
    }
  }

  /** What one detection pass found at one layer. */
  private record Detection(List<Double> means, double score, int firstBatch) {}

  /**
   * Learns one task: detection, expansion one layer at a time with earlier adapters frozen, training
   * with a head block of the task's own (fresh) rows. Labels are the task's own classes {@code 0, 1, …}
   * (as many as the training labels' largest plus one).
   *
   * @throws GraftException GRAFT-R356 for a name already learned, GRAFT-R355 for a task of one class, a
   *     negative label or a held-out label outside the training labels' classes
   */
  public TaskReport learn(String task, List<Example> train, List<Example> heldOut) {
    if (train.size() < 2) {
      throw new IllegalArgumentException("task '" + task + "' needs at least 2 training examples, got " + train.size());
    }
    int classes = head.classesOf(task, train.stream().mapToLong(Example::label).toArray());
    for (int i = 0; i < heldOut.size(); i++) {
      long l = heldOut.get(i).label();
      if (l < 0 || l >= classes) {
        throw new GraftException(RuntimeErrorCode.SEMA_TASK_LABELS, "SEMA task '" + task + "' has classes 0.."
            + (classes - 1) + " (its training labels); held-out example " + i + " is labelled " + l);
      }
    }
    taskClasses = classes;
    int n = pools.length;
    List<List<Double>> z = new ArrayList<>();
    List<Double> scores = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      z.add(List.of());
      scores.add(Double.NaN);
    }
    List<Integer> expanded = new ArrayList<>();
    long trained = 0;
    double steps = 0;
    int trainings = 0;
    if (model == null) {
      Arrays.fill(pools, 1);
      TrainingResult r = trainWith(new int[n], train, heldOut);
      trained += model.getParameterCount();
      steps += r.stepsPerSecond();
      trainings++;
      float[][][] after = features(train);
      for (int i = 0; i < n; i++) {
        descriptors.get(i).add(fit(after[i]));
        expanded.add(options.layers.get(i));
      }
    } else {
      reopen(pools.clone(), false);
      boolean[] done = new boolean[n];
      float[][][] features = features(train);
      for (int pass = 0; ; pass++) {
        int[] order = shuffled(train.size(), options.seed * 1_000_003L + reports.size() * 1_009L + pass);
        int next = -1;
        int nextBatch = Integer.MAX_VALUE;
        for (int i = 0; i < n; i++) {
          if (done[i]) {
            continue;
          }
          Detection d = detect(descriptors.get(i), features[i], order);
          z.set(i, d.means());
          scores.set(i, d.score());
          // the reference's forward stops at the first layer that expands in a batch: the earliest batch wins, then the lowest layer
          if (d.firstBatch() < nextBatch) {
            next = i;
            nextBatch = d.firstBatch();
          }
        }
        if (next < 0) {
          break;
        }
        done[next] = true;
        expanded.add(options.layers.get(next));
        int[] frozen = pools.clone();
        pools[next]++;
        TrainingResult r = trainWith(frozen, train, heldOut);
        trained += model.getParameterCount();
        steps += r.stepsPerSecond();
        trainings++;
        features = features(train);
        descriptors.get(next).add(fit(features[next]));
      }
      if (expanded.isEmpty()) {
        TrainingResult r = options.trainer.fit(model, train, heldOut);
        trained += model.getParameterCount();
        steps += r.stepsPerSecond();
        trainings++;
      }
    }
    head.add(task, classes, model.getParameter(headParameter(ParameterRole.HEAD_WEIGHT)),
        model.getParameter(headParameter(ParameterRole.HEAD_BIAS)));
    List<Integer> pool = Arrays.stream(pools).boxed().toList();
    TaskReport report = new TaskReport(task, z, scores, expanded, pool, trained,
        options.trainer.evaluate(model, heldOut), steps / trainings);
    reports.add(report);
    if (options.progress != null) {
      options.progress.printf(Locale.ROOT, "sema task %d '%s': z-scores %s, detection %s (threshold %.2f), expanded"
              + " layers %s, pools %s (layers %s), trained %d values, held-out task-aware accuracy %.4f%n", reports.size(), task,
          format(z), scores.stream().map(v -> String.format(Locale.ROOT, "%.2f", v)).toList(), options.threshold,
          expanded, pool, options.layers, report.trainedParameters(), report.heldOutAccuracy());
    }
    return report;
  }

  /**
   * Detection at one layer over the batches {@code order} gives: the mean z-score of each descriptor
   * over all rows, the largest over batches of the smallest descriptor's batch mean, and the first
   * batch at which that exceeds the threshold ({@code Integer.MAX_VALUE} where none does; a layer
   * without descriptors never expands).
   */
  private Detection detect(List<Descriptor> layer, float[][] features, int[] order) {
    if (layer.isEmpty()) {
      return new Detection(List.of(), Double.NaN, Integer.MAX_VALUE);
    }
    double[][] rowZ = new double[layer.size()][];
    List<Double> means = new ArrayList<>();
    for (int d = 0; d < layer.size(); d++) {
      rowZ[d] = layer.get(d).zScores(features);
      means.add(Arrays.stream(rowZ[d]).average().orElseThrow());
    }
    double best = Double.NEGATIVE_INFINITY;
    int first = Integer.MAX_VALUE;
    for (int b = 0, at = 0; at < order.length; b++, at += options.detectBatchSize) {
      int end = Math.min(order.length, at + options.detectBatchSize);
      double smallest = Double.POSITIVE_INFINITY;
      for (double[] zs : rowZ) {
        double sum = 0;
        for (int k = at; k < end; k++) {
          sum += zs[order[k]];
        }
        smallest = Math.min(smallest, sum / (end - at));
      }
      best = Math.max(best, smallest);
      if (smallest > options.threshold && first == Integer.MAX_VALUE) {
        first = b;
      }
    }
    return new Detection(means, best, first);
  }

  private static int[] shuffled(int n, long seed) {
    List<Integer> order = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      order.add(i);
    }
    java.util.Collections.shuffle(order, new java.util.Random(seed));
    return order.stream().mapToInt(Integer::intValue).toArray();
  }

  private Descriptor fit(float[][] features) {
    long fitted = descriptors.stream().mapToLong(List::size).sum();
    int width = features.length == 0 ? 0 : features[0].length;
    if (!rankCapWarned && width > 0 && Descriptor.units(options.descriptorRank, width) < options.descriptorRank
        && options.progress != null) {
      options.progress.printf(Locale.ROOT, "sema: descriptorRank %d is above the feature width %d; descriptors get %d"
          + " units (a wider linear autoencoder reconstructs no better)%n", options.descriptorRank, width,
          Descriptor.units(options.descriptorRank, width));
      rankCapWarned = true;
    }
    return Descriptor.fit(features, options.descriptorRank, options.descriptorFit, options.descriptorSchedule,
        options.seed + fitted);
  }

  /** Recompiles with the current pools and {@code frozen}, loads every earlier value, and trains on the task. */
  private TrainingResult trainWith(int[] frozen, List<Example> train, List<Example> heldOut) {
    reopen(frozen, true);
    return options.trainer.fit(model, train, heldOut);
  }

  /** The name of the compiled head's parameter of {@code role}. */
  private String headParameter(ParameterRole role) {
    return current().getParameters().stream().filter(p -> p.getRole() == role).map(Parameter::getName).findFirst()
        .orElseThrow(() -> new IllegalStateException("the SEMA model has no " + role + " parameter"));
  }

  /**
   * Replaces the model by one compiled with the current pools, {@code frozen} leading adapters per
   * layer and a head of the task's classes, every parameter it shares with the old one loaded by name
   * (the head's only where {@code keepHead}: within one task).
   */
  private void reopen(int[] frozen, boolean keepHead) {
    List<Integer> pool = Arrays.stream(pools).boxed().toList();
    List<Integer> fixed = Arrays.stream(frozen).boxed().toList();
    CompiledGraft graft = Graft.host(options.host).name(options.name)
        .sema(options.target, o -> o.reduction(options.reduction).layers(options.layers).poolPerLayer(pool)
            .frozenPerLayer(fixed))
        .classification(taskClasses).compile();
    AdapterModel next = AdapterModel.open(Graft.graphs(graft), options.modelOptions.withSeed(options.seed));
    if (model != null) {
      Map<String, float[]> earlier = model.getParameterValues();
      for (var p : next.getParameters()) {
        float[] v = earlier.get(p.getName());
        boolean isHead = p.getRole() == ParameterRole.HEAD_WEIGHT || p.getRole() == ParameterRole.HEAD_BIAS;
        if (v != null && (keepHead || !isHead)) {
          next.setParameter(p.getName(), v);
        }
      }
      model.close();
    }
    model = next;
  }

  /** Each chosen layer's features of {@code examples} ({@code [layer][example][width]}) under the current model. */
  private float[][][] features(List<Example> examples) {
    AdapterModel m = current();
    String[] tensors = siteInputs(m);
    List<String> names = m.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    List<Batch> batches = new ArrayList<>();
    for (int i = 0; i < examples.size(); i += 64) {
      batches.add(Batch.of(examples.subList(i, Math.min(examples.size(), i + 64)), names));
    }
    Map<String, float[][]> read = m.siteFeatures(batches, new TreeSet<>(Arrays.asList(tensors)));
    float[][][] out = new float[tensors.length][][];
    for (int i = 0; i < tensors.length; i++) {
      out[i] = read.get(tensors[i]);
    }
    return out;
  }

  /** The site input tensor of each chosen layer's pool: the {@code site_input} its first down projection records. */
  private String[] siteInputs(AdapterModel m) {
    String[] out = new String[options.layers.size()];
    for (Parameter p : m.getManifest().getParametersList()) {
      if (!p.getSiteInput().isEmpty() && p.getName().endsWith(".sema.0.down.weight")) {
        OptionalInt layer = LinearSite.layerOf(p.getSiteNode());
        int i = layer.isPresent() ? options.layers.indexOf(layer.getAsInt()) : -1;
        if (i < 0 || out[i] != null) {
          throw new IllegalStateException("SEMA pool at " + p.getSiteNode() + " is not one of the chosen layers "
              + options.layers + ", or a second pool of its layer");
        }
        out[i] = p.getSiteInput();
      }
    }
    for (int i = 0; i < out.length; i++) {
      if (out[i] == null) {
        throw new IllegalStateException("no SEMA pool records its site input at layer " + options.layers.get(i));
      }
    }
    return out;
  }

  private static String format(List<List<Double>> z) {
    return z.stream().map(l -> l.stream().map(v -> String.format(Locale.ROOT, "%.2f", v)).toList().toString())
        .toList().toString();
  }

  /**
   * The class-incremental accuracy on {@code examples} of {@code task} (labelled with its own classes):
   * the prediction is the largest logit of every task's head block, right where it is the example's
   * class in the task's block. GRAFT-R356 for a task not learned, GRAFT-R355 for a label outside its classes.
   */
  public double accuracy(String task, List<Example> examples) {
    return accuracy(task, examples, false);
  }

  /**
   * The task-aware accuracy on {@code examples} of {@code task}: the prediction is the largest logit of
   * the task's own head block (task-incremental evaluation, where the task is known).
   */
  public double taskAccuracy(String task, List<Example> examples) {
    return accuracy(task, examples, true);
  }

  private double accuracy(String task, List<Example> examples, boolean taskAware) {
    head.block(task);
    if (examples.isEmpty()) {
      return Double.NaN;
    }
    AdapterModel m = current();
    List<String> names = m.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    int correct = 0;
    for (int i = 0; i < examples.size(); i += 64) {
      List<Example> part = examples.subList(i, Math.min(examples.size(), i + 64));
      float[][] embeddings = m.embed(Batch.of(part, names).inputs());
      for (boolean c : head.correct(task, embeddings, part.stream().mapToLong(Example::label).toArray(), taskAware)) {
        correct += c ? 1 : 0;
      }
    }
    return (double) correct / examples.size();
  }

  /** The head: every task's block of rows, in the order learned. */
  public TaskHead head() {
    return head;
  }

  /** The model after the last task. */
  public AdapterModel current() {
    if (model == null) {
      throw new IllegalStateException("no task learned yet");
    }
    return model;
  }

  /** The pool size of each chosen layer (in the builder's layer order). */
  public List<Integer> pools() {
    return Arrays.stream(pools).boxed().toList();
  }

  /** The descriptors of each chosen layer, one per adapter, in the order the adapters were added. */
  public List<List<Descriptor>> descriptors() {
    return descriptors.stream().map(List::copyOf).toList();
  }

  /** Every task's report so far. */
  public List<TaskReport> reports() {
    return List.copyOf(reports);
  }

  @Override
  public void close() {
    if (model != null) {
      model.close();
      model = null;
    }
  }

  /** Options of the loop. */
  public static final class Builder {
    private final HostModel host;
    private String name = "Sema";
    private String target = "";
    private List<Integer> layers = List.of();
    private int reduction = 16;
    private double threshold = 2.0;
    private int detectBatchSize = 128;
    private int descriptorRank = 128;
    private Descriptor.Fit descriptorFit = Descriptor.Fit.SGD;
    private Descriptor.Schedule descriptorSchedule = Descriptor.Schedule.REFERENCE;
    private long seed = 42;
    private Trainer trainer = Trainer.builder().build();
    private @Nullable PrintStream progress = System.err;
    private ModelOptions modelOptions = ModelOptions.defaults();

    private Builder(HostModel host) {
      this.host = Objects.requireNonNull(host, "host");
    }

    /** The graft's name (default {@code Sema}). */
    public Builder name(String value) {
      name = value;
      return this;
    }

    /** Selector of the feed-forward blocks' last linear nodes (default empty: every layer's). */
    public Builder target(String value) {
      target = value;
      return this;
    }

    /** The layers that hold pools (required, ascending, each the {@code layer.N} of a feed-forward block). */
    public Builder layers(List<Integer> value) {
      if (value.isEmpty() || !value.stream().sorted().distinct().toList().equals(value)) {
        throw new IllegalArgumentException("SEMA layers must be distinct, ascending and not empty, got " + value);
      }
      layers = List.copyOf(value);
      return this;
    }

    /** Each adapter's reduction factor (default 16). */
    public Builder reduction(int value) {
      reduction = value;
      return this;
    }

    /**
     * The z-score every descriptor of a layer must exceed, as its mean over a detection batch, for
     * the layer to expand (default 2, the {@code exp_threshold} of the reference's default
     * configuration {@code exps/sema_inr_10task.json}, and of its CIFAR-100 and ImageNet-R ones; its
     * VTAB and ImageNet-A ones use 1).
     */
    public Builder threshold(double value) {
      if (!(value > 0) || Double.isInfinite(value)) {
        throw new IllegalArgumentException("SEMA threshold must be positive and finite, got " + value);
      }
      threshold = value;
      return this;
    }

    /**
     * Examples per detection batch (default 128, the reference's {@code detect_batch_size}); a layer
     * expands when some batch's mean z-scores all exceed the threshold.
     */
    public Builder detectBatchSize(int value) {
      if (value < 1) {
        throw new IllegalArgumentException("SEMA detection batch size must be at least 1, got " + value);
      }
      detectBatchSize = value;
      return this;
    }

    /**
     * The units k of each descriptor's linear autoencoder (default 128, the reference's {@code
     * rd_dim}); capped at the feature width d (and, fitted in closed form, at n − 1), since more
     * units than d add nothing.
     */
    public Builder descriptorRank(int value) {
      if (value < 1) {
        throw new GraftException(RuntimeErrorCode.DESCRIPTOR_OPTIONS, "SEMA descriptor rank must be at least 1, got " + value);
      }
      descriptorRank = value;
      return this;
    }

    /** How each descriptor is fitted (default {@link Descriptor.Fit#SGD}, the reference's). */
    public Builder descriptorFit(Descriptor.Fit value) {
      descriptorFit = Objects.requireNonNull(value, "descriptorFit");
      return this;
    }

    /** The SGD schedule of each descriptor (default {@link Descriptor.Schedule#REFERENCE}). */
    public Builder descriptorSchedule(Descriptor.Schedule value) {
      descriptorSchedule = Objects.requireNonNull(value, "descriptorSchedule");
      return this;
    }

    /** The seed of each model's initialization and of the descriptors' starts (default 42). */
    public Builder seed(long value) {
      seed = value;
      return this;
    }

    /** The trainer of every task (default {@code Trainer.builder().build()}). */
    public Builder trainer(Trainer value) {
      trainer = Objects.requireNonNull(value, "trainer");
      return this;
    }

    /** Where the per-task line goes (default standard error; null: nowhere). */
    public Builder progress(@Nullable PrintStream value) {
      progress = value;
      return this;
    }

    /** How each task's model is opened (the host file, the device); its seed is replaced by {@link #seed}. */
    public Builder modelOptions(ModelOptions value) {
      modelOptions = Objects.requireNonNull(value, "modelOptions");
      return this;
    }

    public Sema build() {
      if (layers.isEmpty()) {
        throw new IllegalStateException("SEMA needs layers(...): the layers that hold adapter pools");
      }
      return new Sema(this);
    }
  }
}
