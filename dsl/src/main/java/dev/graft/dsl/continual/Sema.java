package dev.graft.dsl.continual;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.train.Trainer;
import dev.graft.runtime.train.TrainingResult;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * SEMA's continual-learning loop (Wang et al., "Self-Expansion of Pre-trained Models with Mixture
 * of Adapters for Continual Learning", CVPR 2025) over the {@code sema} kind: tasks arrive one at a
 * time; the first adds one adapter to the pool of every chosen layer; each later one first runs a
 * detection pass over its training data, and at each layer where <em>every</em> descriptor's mean
 * z-score exceeds {@code threshold} adds one adapter (and its router column). The graft is then
 * recompiled with the larger pools, every earlier parameter loaded by name, the earlier adapters and
 * router columns frozen ({@code frozenPerLayer}), and trained on the task with the trainer; the
 * classification head trains on every task. Each added adapter gets a {@link Descriptor} fitted to
 * the task's features after its training.
 *
 * <p>Features: the adapted host's pooled embedding ({@link AdapterModel#embed}), the same for every
 * layer's descriptors. (The paper's descriptor at a layer reads that layer's input; the graft's
 * graphs expose only the pooled embedding, so here the layers differ only by which tasks their
 * descriptors were fitted on.)
 *
 * <p>Each task prints one progress line (the z-scores per layer, the layers expanded, the pool sizes,
 * the trained parameters). A {@code Sema} holds the current model; close it when done.
 */
public final class Sema implements AutoCloseable {
  private final Builder options;
  private final int[] pools;
  private final List<List<Descriptor>> descriptors = new ArrayList<>();
  private final List<TaskReport> reports = new ArrayList<>();
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
   * @param zScores per chosen layer, the mean z-score of each of its descriptors on the task's data
   *     (empty lists for the first task)
   * @param expanded the layers that got an adapter
   * @param pools the pool size of each chosen layer after the task
   * @param trainedParameters the values the task trained (new adapters, their router columns, the head)
   * @param heldOutAccuracy the accuracy on the task's held-out examples after training
   * @param stepsPerSecond the task's training steps per second (the trainer's figure)
   */
  public record TaskReport(String task, List<List<Double>> zScores, List<Integer> expanded, List<Integer> pools,
      long trainedParameters, double heldOutAccuracy, double stepsPerSecond) {
    public TaskReport {
      zScores = zScores.stream().map(List::copyOf).toList();
      expanded = List.copyOf(expanded);
      pools = List.copyOf(pools);
    }
  }

  /** Learns one task: detection, expansion, recompilation with earlier adapters frozen, training. */
  public TaskReport learn(String task, List<Example> train, List<Example> heldOut) {
    if (train.size() < 2) {
      throw new IllegalArgumentException("task '" + task + "' needs at least 2 training examples, got " + train.size());
    }
    List<List<Double>> z = new ArrayList<>();
    List<Integer> expanded = new ArrayList<>();
    float[][] before = model == null ? null : embed(model, train);
    for (int i = 0; i < pools.length; i++) {
      List<Double> scores = new ArrayList<>();
      if (before != null) {
        for (Descriptor d : descriptors.get(i)) {
          scores.add(d.zScore(before));
        }
      }
      z.add(scores);
      if (scores.stream().allMatch(s -> s > options.threshold)) {
        expanded.add(options.layers.get(i));
      }
    }
    List<Integer> frozen = Arrays.stream(pools).boxed().toList();
    for (int i = 0; i < pools.length; i++) {
      if (expanded.contains(options.layers.get(i))) {
        pools[i]++;
      }
    }
    List<Integer> pool = Arrays.stream(pools).boxed().toList();
    CompiledGraft graft = Graft.host(options.host).name(options.name)
        .sema(options.target, o -> o.reduction(options.reduction).layers(options.layers).poolPerLayer(pool)
            .frozenPerLayer(frozen))
        .classification(options.labels).compile();
    AdapterModel next = AdapterModel.open(Graft.graphs(graft), options.modelOptions.withSeed(options.seed));
    if (model != null) {
      Map<String, float[]> earlier = model.getParameterValues();
      for (var p : next.getParameters()) {
        float[] v = earlier.get(p.getName());
        if (v != null) {
          next.setParameter(p.getName(), v);
        }
      }
      model.close();
    }
    model = next;
    TrainingResult training = options.trainer.fit(next, train, heldOut);
    float[][] after = embed(next, train);
    for (int i = 0; i < pools.length; i++) {
      if (expanded.contains(options.layers.get(i))) {
        descriptors.get(i).add(Descriptor.fit(after, options.descriptorRank, options.seed + reports.size()));
      }
    }
    TaskReport report = new TaskReport(task, z, expanded, pool, next.getParameterCount(),
        options.trainer.evaluate(next, heldOut), training.stepsPerSecond());
    reports.add(report);
    if (options.progress != null) {
      options.progress.printf(Locale.ROOT, "sema task %d '%s': z-scores %s, expanded layers %s, pools %s (layers %s),"
              + " trained %d values, held-out accuracy %.4f%n", reports.size(), task, format(z), expanded, pool,
          options.layers, report.trainedParameters(), report.heldOutAccuracy());
    }
    return report;
  }

  private static String format(List<List<Double>> z) {
    return z.stream().map(l -> l.stream().map(v -> String.format(Locale.ROOT, "%.2f", v)).toList().toString())
        .toList().toString();
  }

  /** The accuracy of the current model on {@code examples}. */
  public double accuracy(List<Example> examples) {
    return options.trainer.evaluate(current(), examples);
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

  private static float[][] embed(AdapterModel m, List<Example> examples) {
    List<String> names = m.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    List<float[]> rows = new ArrayList<>();
    for (int i = 0; i < examples.size(); i += 64) {
      Batch batch = Batch.of(examples.subList(i, Math.min(examples.size(), i + 64)), names);
      rows.addAll(Arrays.asList(m.embed(batch.inputs())));
    }
    return rows.toArray(float[][]::new);
  }

  /** Options of the loop. */
  public static final class Builder {
    private final HostModel host;
    private String name = "Sema";
    private String target = "";
    private List<Integer> layers = List.of();
    private int reduction = 16;
    private double threshold = 1.0;
    private int descriptorRank = 8;
    private int labels = 2;
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

    /** The z-score every descriptor of a layer must exceed for the layer to expand (default 1.0). */
    public Builder threshold(double value) {
      if (!(value > 0) || Double.isInfinite(value)) {
        throw new IllegalArgumentException("SEMA threshold must be positive and finite, got " + value);
      }
      threshold = value;
      return this;
    }

    /** The units k of each descriptor's linear autoencoder (default 8). */
    public Builder descriptorRank(int value) {
      if (value < 1) {
        throw new IllegalArgumentException("descriptor rank must be at least 1, got " + value);
      }
      descriptorRank = value;
      return this;
    }

    /** Classes of the shared classification head (default 2); every task's labels must be below it. */
    public Builder labels(int value) {
      labels = value;
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
