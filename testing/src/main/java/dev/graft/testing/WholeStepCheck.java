package dev.graft.testing;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OrtException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.compiler.spec.TokenClassificationSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.TrainStep;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.ToDoubleFunction;

/**
 * The whole training step of any graft on a tiny host, checked against central differences of
 * its loss: compile with gradients exposed, open the step on ONNX Runtime with the host's
 * weights as external initializers, feed a fixed {@link #batch}, and compare every trainable
 * parameter's {@code .grad} output with {@code (loss(p + h) − loss(p − h)) / 2h} element by
 * element. Use a float64 host ({@code TinyBertHost.graph(seed, TensorType.DOUBLE)}) for tight
 * tolerances; a float32 host runs the step as users do. The same fixture runs the step
 * repeatedly from a chosen {@link State} ({@link #train}) and runs the inference graph
 * ({@link #inference}).
 *
 * <p>Parameter values are seeded random, not the kinds' initial values: a zero-initialized
 * factor (LoRA's B) would make other gradients exactly zero and hide errors. By default
 * parameters the runtime initializes at or near one (scaling vectors, magnitudes, host copies)
 * get {@code 1 + noise}; {@link #randomize} draws them otherwise.
 */
public final class WholeStepCheck implements AutoCloseable {
  /** A batch of 2 × 5 tokens, the second padded by 2; ids below 16 fit every tiny host's vocabulary. */
  public static final long[] SHAPE = {2, 5};
  public static final long[] INPUT_IDS = {3, 7, 12, 8, 1, 5, 9, 13, 0, 0};
  public static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  public static final long[] TOKEN_TYPES = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  public static final long[] LABELS = {1, 0};
  /** Token labels of {@link #SHAPE} for token classification: one the ignore index, real classes on the padding (masked). */
  public static final long[] TOKEN_LABELS = {1, 0, -100, 1, 0, 1, 1, 0, 1, 0};
  public static final double LEARNING_RATE = 0.01;

  /** Parameter values and both AdamW moments, by parameter name. */
  public record State(Map<String, double[]> values, Map<String, double[]> m, Map<String, double[]> v) {}

  /** Where {@link #train} ended, and the loss of each step (before its update). */
  public record Training(State state, double[] losses) {
    public double firstLoss() {
      return losses[0];
    }

    public double lastLoss() {
      return losses[losses.length - 1];
    }
  }

  /**
   * Tolerances of a central-difference check, step {@code h}: each element must satisfy {@code
   * |analytic − numeric| ≤ atol + rtol·|numeric|}, each parameter's relative L2 error be at most
   * {@code maxRelativeL2}, and its squared gradient norm exceed {@code minNormSquared}.
   */
  public record Tolerance(double h, double atol, double rtol, double maxRelativeL2, double minNormSquared) {
    public static Tolerance of(double h, double atol, double rtol) {
      return new Tolerance(h, atol, rtol, Double.POSITIVE_INFINITY, 1e-12);
    }

    public Tolerance relativeL2(double max) {
      return new Tolerance(h, atol, rtol, max, minNormSquared);
    }

    public Tolerance minNormSquared(double min) {
      return new Tolerance(h, atol, rtol, maxRelativeL2, min);
    }
  }

  /** What a passed check measured: the largest element-wise error, the largest relative L2 error, per-parameter lines. */
  public record Result(double maxError, double maxRelativeL2, String stats) {}

  public final CompiledGraft graft;
  public final List<Parameter> params;
  public final Map<String, double[]> values = new LinkedHashMap<>();
  /**
   * The feeds of every run not given its own batch, by input name (a name the graph does not
   * take is skipped): {@link #INPUT_IDS}, {@link #MASK}, {@link #TOKEN_TYPES} and the labels
   * ({@link #LABELS}, the ids for a causal LM, {@link #TOKEN_LABELS} for token classification) until a test puts others.
   */
  public final Map<String, Feed> batch = new LinkedHashMap<>();
  /** The per-step seed fed to a training step that takes one. */
  public long seed = 12345;
  /** The learning rate of {@link #run(Map, Set)}. */
  public double learningRate = LEARNING_RATE;
  /** Gates of named adapters ({@code gate.<name>}) to feed; a gate not listed is fed true (on). */
  public final Map<String, Boolean> gates = new HashMap<>();
  private final Graph hostGraph;
  private final TrainStep names;
  private final HostSession train;

  private WholeStepCheck(Graph hostGraph, GraftSpec spec) throws OrtException {
    this.hostGraph = hostGraph;
    HostModel host = HostModel.of("tiny", OnnxExport.write(hostGraph, "tiny"));
    graft = GraftCompiler.compile(spec, host, true).orThrow();
    params = graft.manifest().getParametersList();
    names = graft.manifest().getTrain();
    randomize(7, p -> switch (p.getInit()) {
      case ONES, HOST_COPY, HOST_COLUMN_NORM, CONSTANT -> 1;
      default -> 0;
    }, p -> 0.3);
    batch.put("input_ids", Feed.longs(INPUT_IDS, SHAPE));
    batch.put("attention_mask", Feed.longs(MASK, SHAPE));
    batch.put("token_type_ids", Feed.longs(TOKEN_TYPES, SHAPE));
    batch.put(names.getLabels(), spec.task() instanceof CausalLmSpec ? Feed.longs(INPUT_IDS, SHAPE)
        : spec.task() instanceof TokenClassificationSpec ? Feed.longs(TOKEN_LABELS, SHAPE)
        : Feed.longs(LABELS, LABELS.length));
    train = new HostSession(graft.train(), hostGraph, true);
  }

  /** The step of {@code adapters} with a 2-label mean-pooled classification head on {@code hostGraph}. */
  public static WholeStepCheck classification(Graph hostGraph, AdapterSpec... adapters) throws OrtException {
    return of(hostGraph, new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), adapters);
  }

  /** The step of {@code adapters} with {@code task} on {@code hostGraph}. */
  public static WholeStepCheck of(Graph hostGraph, TaskSpec task, AdapterSpec... adapters) throws OrtException {
    return new WholeStepCheck(hostGraph, new GraftSpec("Tiny", "tiny", List.of(adapters), task, AdamWSpec.DEFAULT, null));
  }

  /** The step of a whole declaration (named adapters, compositions, a train list) on {@code hostGraph}. */
  public static WholeStepCheck of(Graph hostGraph, GraftSpec spec) throws OrtException {
    return new WholeStepCheck(hostGraph, spec);
  }

  public static int size(Parameter p) {
    return (int) p.getShapeList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b);
  }

  public static long[] shape(Parameter p) {
    return p.getShapeList().stream().mapToLong(Long::longValue).toArray();
  }

  /**
   * Replaces {@link #values} with {@code mean(p) + scale(p)·N(0, 1)} from {@code new
   * Random(seed)}, parameter by parameter, rounded to float32 (the same values in both
   * precisions).
   */
  public WholeStepCheck randomize(long seed, ToDoubleFunction<Parameter> mean, ToDoubleFunction<Parameter> scale) {
    Random r = new Random(seed);
    values.clear();
    for (Parameter p : params) {
      double[] v = new double[size(p)];
      double m = mean.applyAsDouble(p);
      double s = scale.applyAsDouble(p);
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) (m + s * r.nextGaussian());
      }
      values.put(p.getName(), v);
    }
    return this;
  }

  /**
   * The manifest's initializers drawn from {@code new Random(seed)}: Kaiming-uniform {@code
   * U(−1, 1)/√scale}, normal {@code N(0, scale²)}, zeros otherwise.
   */
  public Map<String, double[]> initialValues(long seed) {
    Random r = new Random(seed);
    Map<String, double[]> init = new LinkedHashMap<>();
    for (Parameter p : params) {
      double[] v = new double[size(p)];
      for (int i = 0; i < v.length; i++) {
        v[i] = switch (p.getInit()) {
          case KAIMING_UNIFORM -> (2 * r.nextDouble() - 1) / Math.sqrt(p.getInitScale());
          case NORMAL -> r.nextGaussian() * p.getInitScale();
          default -> 0;
        };
      }
      init.put(p.getName(), v);
    }
    return init;
  }

  /** {@code values} with both moments zero, as before the first step. */
  public State zeroMoments(Map<String, double[]> values) {
    Map<String, double[]> m = new HashMap<>();
    Map<String, double[]> v = new HashMap<>();
    for (Parameter p : params) {
      m.put(p.getName(), new double[size(p)]);
      v.put(p.getName(), new double[size(p)]);
    }
    return new State(values, m, v);
  }

  /**
   * {@link #values} with random moments from {@code seed}, as after some steps: per parameter and entry,
   * {@code m ~ 0.01·N(0, 1)} and {@code v ~ 1e-4·U[1, 2)}.
   */
  public State randomMoments(long seed) {
    Random r = new Random(seed);
    Map<String, double[]> m = new HashMap<>();
    Map<String, double[]> v = new HashMap<>();
    for (Parameter p : params) {
      double[] mp = new double[size(p)];
      double[] vp = new double[mp.length];
      for (int i = 0; i < mp.length; i++) {
        mp[i] = 0.01 * r.nextGaussian();
        vp[i] = 1e-4 * (1 + r.nextDouble());
      }
      m.put(p.getName(), mp);
      v.put(p.getName(), vp);
    }
    return new State(values, m, v);
  }

  /** Every parameter's updated value and moments: {@code <p>.next}, {@code <p>.adam_m.next}, {@code <p>.adam_v.next}. */
  public Set<String> updateOutputs() {
    Set<String> outputs = new LinkedHashSet<>();
    for (Parameter p : params) {
      outputs.addAll(Set.of(p.getName() + ".next", p.getName() + ".adam_m.next", p.getName() + ".adam_v.next"));
    }
    return outputs;
  }

  /** Whether entry {@code i} of parameter {@code name} and both its moments are the same in {@code out} as in {@code before}. */
  public static boolean unchanged(Map<String, double[]> out, State before, String name, int i) {
    return out.get(name + ".next")[i] == before.values().get(name)[i]
        && out.get(name + ".adam_m.next")[i] == before.m().get(name)[i]
        && out.get(name + ".adam_v.next")[i] == before.v().get(name)[i];
  }

  /** The training step's output names. */
  public Set<String> trainOutputs() throws OrtException {
    return train.outputNames();
  }

  /** The element type the training step declares for input {@code name}. */
  public OnnxJavaType trainInputType(String name) {
    return train.inputType(name);
  }

  /** Runs the step once (step 1, zero moments, {@link #learningRate}) on {@link #batch} with {@link #values} overridden by {@code override}. */
  public Map<String, double[]> run(Map<String, double[]> override, Set<String> outputs) throws OrtException {
    Map<String, double[]> v = new HashMap<>(values);
    v.putAll(override);
    return run(batch, zeroMoments(v), 1, learningRate, outputs);
  }

  /** One training step on {@code feeds} from {@code state} at 1-based {@code step}; returns the named outputs. */
  public Map<String, double[]> run(Map<String, Feed> feeds, State state, int step, double lr, Set<String> outputs)
      throws OrtException {
    Map<String, Feed> in = withGates(feeds, train);
    in.put("seed", Feed.longs(new long[] {seed}));
    in.put(names.getStep(), Feed.scalar(step));
    in.put(names.getLearningRate(), Feed.scalar(lr));
    for (Parameter p : params) {
      String n = p.getName();
      in.put(n, Feed.reals(state.values().get(n), shape(p)));
      in.put(n + names.getFirstMomentSuffix(), Feed.reals(state.m().get(n), shape(p)));
      in.put(n + names.getSecondMomentSuffix(), Feed.reals(state.v().get(n), shape(p)));
    }
    return train.run(in, outputs);
  }

  /** {@code feeds} and, for each gate {@code session} takes that they do not hold, {@link #gates}' value (true when unlisted). */
  private Map<String, Feed> withGates(Map<String, Feed> feeds, HostSession session) {
    Map<String, Feed> in = new LinkedHashMap<>(feeds);
    for (String name : session.inputNames()) {
      if (name.startsWith("gate.")) {
        in.putIfAbsent(name, Feed.bool(gates.getOrDefault(name, true)));
      }
    }
    return in;
  }

  public double loss(Map<String, double[]> override) throws OrtException {
    return run(override, Set.of("loss")).get("loss")[0];
  }

  /**
   * Runs {@code steps} steps on {@code feeds} from {@code init} with zero moments at learning
   * rate {@code lr}, each step's updated values and moments fed to the next.
   */
  public Training train(Map<String, Feed> feeds, Map<String, double[]> init, int steps, double lr) throws OrtException {
    Set<String> outputs = new LinkedHashSet<>(List.of("loss"));
    for (Parameter p : params) {
      String n = p.getName();
      outputs.addAll(List.of(n + names.getUpdatedSuffix(), n + names.getFirstMomentSuffix() + names.getUpdatedSuffix(),
          n + names.getSecondMomentSuffix() + names.getUpdatedSuffix()));
    }
    State state = zeroMoments(init);
    double[] losses = new double[steps];
    for (int step = 1; step <= steps; step++) {
      Map<String, double[]> out = run(feeds, state, step, lr, outputs);
      losses[step - 1] = out.get("loss")[0];
      Map<String, double[]> v = new HashMap<>();
      Map<String, double[]> m = new HashMap<>();
      Map<String, double[]> s = new HashMap<>();
      for (Parameter p : params) {
        String n = p.getName();
        v.put(n, out.get(n + names.getUpdatedSuffix()));
        m.put(n, out.get(n + names.getFirstMomentSuffix() + names.getUpdatedSuffix()));
        s.put(n, out.get(n + names.getSecondMomentSuffix() + names.getUpdatedSuffix()));
      }
      state = new State(v, m, s);
    }
    return new Training(state, losses);
  }

  /** Runs the inference graph on {@link #batch} with {@link #values}; returns its logits. */
  public double[] inference() throws OrtException {
    try (HostSession inference = new HostSession(graft.inference(), hostGraph, true)) {
      Map<String, Feed> in = withGates(batch, inference);
      for (Parameter p : params) {
        in.put(p.getName(), Feed.reals(values.get(p.getName()), shape(p)));
      }
      String logits = graft.manifest().getLogits();
      return inference.run(in, Set.of(logits)).get(logits);
    }
  }

  /** {@link #assertGradientsMatch(Tolerance)} with no relative L2 bound; returns the largest element-wise error. */
  public double assertGradientsMatch(double h, double atol, double rtol) throws OrtException {
    return assertGradientsMatch(Tolerance.of(h, atol, rtol)).maxError();
  }

  /**
   * Compares every element of every trainable parameter's gradient with central differences of
   * the loss on {@link #batch}, divided by the exact difference of the perturbed values as fed
   * (float32-rounded on a float32 step), within {@code tolerance}.
   */
  public Result assertGradientsMatch(Tolerance tolerance) throws OrtException {
    Set<String> gradOutputs = new LinkedHashSet<>();
    params.stream().filter(p -> !p.getFrozen()).forEach(p -> gradOutputs.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
    Map<String, double[]> grads = run(Map.of(), gradOutputs);
    double h = tolerance.h();
    StringBuilder failures = new StringBuilder();
    StringBuilder stats = new StringBuilder();
    double worst = 0;
    double worstRel = 0;
    for (Parameter p : params) {
      if (p.getFrozen()) {
        continue;
      }
      boolean single = trainInputType(p.getName()) == OnnxJavaType.FLOAT;
      double[] base = values.get(p.getName());
      double[] analytic = grads.get(p.getName() + GraftCompiler.GRADIENT_SUFFIX);
      assertEquals(base.length, analytic.length, p.getName());
      double errSq = 0;
      double normSq = 0;
      double maxErr = 0;
      for (int i = 0; i < base.length; i++) {
        double[] plus = base.clone();
        double[] minus = base.clone();
        plus[i] = single ? (float) (base[i] + h) : base[i] + h;
        minus[i] = single ? (float) (base[i] - h) : base[i] - h;
        double numeric = (loss(Map.of(p.getName(), plus)) - loss(Map.of(p.getName(), minus))) / (plus[i] - minus[i]);
        double err = Math.abs(analytic[i] - numeric);
        errSq += err * err;
        normSq += numeric * numeric;
        maxErr = Math.max(maxErr, err);
        if (!(err <= tolerance.atol() + tolerance.rtol() * Math.abs(numeric))) {
          failures.append(String.format("%n  %s[%d]: analytic %.10g, numeric %.10g", p.getName(), i, analytic[i], numeric));
        }
      }
      double rel = Math.sqrt(errSq / normSq);
      worst = Math.max(worst, maxErr);
      worstRel = Math.max(worstRel, rel);
      stats.append(String.format("%n  %s: |grad| %.3g, max err %.3g, rel L2 err %.3g", p.getName(), Math.sqrt(normSq), maxErr, rel));
      if (!(normSq > tolerance.minNormSquared())) {
        failures.append(String.format("%n  %s: gradient is negligible (|grad| %.3g)", p.getName(), Math.sqrt(normSq)));
      } else if (!(rel <= tolerance.maxRelativeL2())) {
        failures.append(String.format("%n  %s: relative L2 error %.3g", p.getName(), rel));
      }
    }
    assertEquals("", failures.toString(), "gradients differ from central differences:" + stats);
    assertTrue(worst <= tolerance.atol() + 1, "finite");
    return new Result(worst, worstRel, stats.toString());
  }

  /**
   * Checks the AdamW update of {@link #run(Map, Set)} against a hand computation: with zero
   * moments at step 1, m̂ = g and v̂ = g², so p' = p − lr·(g/(|g|+ε) + λ·p) for weights and p −
   * lr·g/(|g|+ε) for the head bias; m' and v' to 1e-6 and 1e-5 relative, p' to {@code tolerance}.
   */
  public void assertAdamWFirstStep(double tolerance) throws OrtException {
    AdamWSpec o = AdamWSpec.DEFAULT;
    String next = names.getUpdatedSuffix();
    String m = names.getFirstMomentSuffix() + next;
    String v = names.getSecondMomentSuffix() + next;
    Set<String> outs = new LinkedHashSet<>();
    for (Parameter p : params) {
      String n = p.getName();
      outs.addAll(List.of(n + GraftCompiler.GRADIENT_SUFFIX, n + next, n + m, n + v));
    }
    Map<String, double[]> r = run(Map.of(), outs);
    int checked = 0;
    for (Parameter p : params) {
      String n = p.getName();
      boolean decays = p.getRole() != ParameterRole.HEAD_BIAS;
      double[] w = values.get(n);
      double[] g = r.get(n + GraftCompiler.GRADIENT_SUFFIX);
      for (int i = 0; i < w.length; i++) {
        double gi = g[i];
        assertEquals((1 - o.beta1()) * gi, r.get(n + m)[i], 1e-6 * Math.abs(gi) + 1e-12, n + " m[" + i + "]");
        assertEquals((1 - o.beta2()) * gi * gi, r.get(n + v)[i], 1e-5 * gi * gi + 1e-15, n + " v[" + i + "]");
        double expected = w[i] - learningRate * (gi / (Math.abs(gi) + o.epsilon()) + (decays ? o.weightDecay() * w[i] : 0));
        assertEquals(expected, r.get(n + next)[i], tolerance, n + next + "[" + i + "] (decay " + decays + ")");
        checked++;
      }
    }
    assertEquals(params.stream().mapToLong(WholeStepCheck::size).sum(), checked);
  }

  @Override
  public void close() throws OrtException {
    train.close();
  }
}
