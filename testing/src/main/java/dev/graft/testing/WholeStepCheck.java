package dev.graft.testing;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * The whole training step of any graft on a tiny host, checked against central differences of
 * its loss: compile with gradients exposed, open the step on ONNX Runtime with the host's
 * weights as external initializers, feed a fixed batch, and compare every trainable
 * parameter's {@code .grad} output with {@code (loss(p + h) − loss(p − h)) / 2h} element by
 * element. Use a float64 host ({@code TinyBertHost.graph(seed, TensorType.DOUBLE)}) for tight
 * tolerances.
 *
 * <p>Parameter values are seeded random, not the kinds' initial values: a zero-initialized
 * factor (LoRA's B) would make other gradients exactly zero and hide errors. Parameters the
 * runtime initializes at or near one (scaling vectors, magnitudes, host copies) get {@code 1 +
 * noise}.
 */
public final class WholeStepCheck implements AutoCloseable {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  /** A batch of 2 × 5 tokens, the second padded by 2; ids below 16 fit every tiny host's vocabulary. */
  public static final long[] SHAPE = {2, 5};
  public static final long[] INPUT_IDS = {3, 7, 12, 8, 1, 5, 9, 13, 0, 0};
  public static final long[] MASK = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
  public static final long[] TOKEN_TYPES = {0, 0, 0, 1, 1, 0, 0, 0, 0, 0};
  public static final long[] LABELS = {1, 0};
  public static final double LEARNING_RATE = 0.01;

  public final CompiledGraft graft;
  public final List<Parameter> params;
  public final Map<String, double[]> values = new LinkedHashMap<>();
  /** The per-step seed fed to a training step that takes one. */
  public long seed = 12345;
  /** Gates of named adapters ({@code gate.<name>}) to feed; a gate not listed is fed true (on). */
  public final Map<String, Boolean> gates = new HashMap<>();
  private final int elem;
  private final boolean causalLm;
  private final Map<String, OnnxTensor> hostWeights = new LinkedHashMap<>();
  private final OrtSession train;

  private WholeStepCheck(Graph hostGraph, GraftSpec spec) throws OrtException {
    HostModel host = new HostModel("tiny", OnnxExport.write(hostGraph, "tiny"), "sha");
    graft = GraftCompiler.compile(spec, host, true).orThrow();
    params = graft.manifest().getParametersList();
    causalLm = spec.task() instanceof CausalLmSpec;
    elem = hostGraph.typeOrThrow(hostGraph.outputs().get(0)).elemType();
    Random r = new Random(7);
    for (Parameter p : params) {
      double[] v = new double[size(p)];
      boolean nearOne = switch (p.getInit()) {
        case ONES, HOST_COPY, HOST_COLUMN_NORM, CONSTANT -> true;
        default -> false;
      };
      for (int i = 0; i < v.length; i++) {
        v[i] = (float) ((nearOne ? 1 : 0) + 0.3 * r.nextGaussian()); // the same values in both precisions
      }
      values.put(p.getName(), v);
    }
    for (String name : graft.manifest().getHostInitializersList()) {
      TensorProto t = hostGraph.initializers().get(name);
      if (t != null) {
        hostWeights.put(name, tensorOf(t));
      }
    }
    train = session(graft.train().toByteArray(), graft.train().getGraph().getInitializerList());
  }

  /** A session over {@code model} fed the host weights among {@code initializers} (the external ones it holds). */
  private OrtSession session(byte[] model, List<TensorProto> initializers) throws OrtException {
    OrtSession.SessionOptions options = new OrtSession.SessionOptions();
    Map<String, OnnxTensorLike> external = new HashMap<>();
    for (TensorProto i : initializers) {
      OnnxTensor t = hostWeights.get(i.getName());
      if (t != null && i.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        external.put(i.getName(), t);
      }
    }
    options.addExternalInitializers(external);
    return ENV.createSession(model, options);
  }

  /** The training step's output names. */
  public Set<String> trainOutputs() throws OrtException {
    return train.getOutputNames();
  }

  /** Runs the inference graph on the fixed batch with {@link #values}; returns its first output. */
  public double[] inference() throws OrtException {
    try (OrtSession inference = session(graft.inference().toByteArray(), graft.inference().getGraph().getInitializerList())) {
      return run(inference, Map.of(), Set.of(graft.manifest().getLogits())).get(graft.manifest().getLogits());
    }
  }

  /** The step of {@code adapters} with a 2-label mean-pooled classification head on {@code hostGraph}. */
  public static WholeStepCheck classification(Graph hostGraph, AdapterSpec... adapters) throws OrtException {
    return of(hostGraph, new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), adapters);
  }

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

  private OnnxTensor tensor(double[] v, long[] shape) throws OrtException {
    if (elem == TensorType.DOUBLE) {
      return OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(v), shape);
    }
    float[] f = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      f[i] = (float) v[i];
    }
    return OnnxTensor.createTensor(ENV, FloatBuffer.wrap(f), shape);
  }

  private OnnxTensor tensorOf(TensorProto t) throws OrtException {
    long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    if (t.getDataType() == TensorType.INT64) {
      return OnnxTensor.createTensor(ENV, LongBuffer.wrap(Tensors.readLongs(t).stream().mapToLong(Long::longValue).toArray()), shape);
    }
    return t.getDataType() == TensorType.DOUBLE
        ? OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(Tensors.readDoubles(t)), shape)
        : tensor(Tensors.readDoubles(t), shape);
  }

  /** Runs the step with {@link #values} overridden by {@code override}; returns the named outputs. */
  public Map<String, double[]> run(Map<String, double[]> override, Set<String> outputs) throws OrtException {
    return run(train, override, outputs);
  }

  private Map<String, double[]> run(OrtSession session, Map<String, double[]> override, Set<String> outputs)
      throws OrtException {
    Map<String, OnnxTensor> feeds = new HashMap<>();
    try {
      Set<String> inputs = session.getInputNames();
      feeds.put("input_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(INPUT_IDS), SHAPE));
      if (inputs.contains("attention_mask")) {
        feeds.put("attention_mask", OnnxTensor.createTensor(ENV, LongBuffer.wrap(MASK), SHAPE));
      }
      if (inputs.contains("token_type_ids")) {
        feeds.put("token_type_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(TOKEN_TYPES), SHAPE));
      }
      for (String in : inputs) {
        if (in.startsWith("gate.")) {
          feeds.put(in, OnnxTensor.createTensor(ENV, gates.getOrDefault(in, true)));
        }
      }
      boolean training = inputs.contains("labels");
      if (training) {
        feeds.put("labels", causalLm
            ? OnnxTensor.createTensor(ENV, LongBuffer.wrap(INPUT_IDS), SHAPE)
            : OnnxTensor.createTensor(ENV, LongBuffer.wrap(LABELS), new long[] {LABELS.length}));
        if (inputs.contains("seed")) {
          feeds.put("seed", OnnxTensor.createTensor(ENV, LongBuffer.wrap(new long[] {seed}), new long[0]));
        }
        feeds.put("step", tensor(new double[] {1}, new long[0]));
        feeds.put("learning_rate", tensor(new double[] {LEARNING_RATE}, new long[0]));
      }
      for (Parameter p : params) {
        double[] v = override.getOrDefault(p.getName(), values.get(p.getName()));
        feeds.put(p.getName(), tensor(v, shape(p)));
        if (training) {
          feeds.put(p.getName() + ".adam_m", tensor(new double[v.length], shape(p)));
          feeds.put(p.getName() + ".adam_v", tensor(new double[v.length], shape(p)));
        }
      }
      try (OrtSession.Result r = session.run(feeds, outputs)) {
        Map<String, double[]> out = new LinkedHashMap<>();
        for (String o : outputs) {
          OnnxTensor t = (OnnxTensor) r.get(o).orElseThrow();
          double[] d;
          if (elem == TensorType.DOUBLE) {
            DoubleBuffer b = t.getDoubleBuffer();
            d = new double[b.remaining()];
            b.get(d);
          } else {
            FloatBuffer b = t.getFloatBuffer();
            d = new double[b.remaining()];
            for (int i = 0; i < d.length; i++) {
              d[i] = b.get(i);
            }
          }
          out.put(o, d);
        }
        return out;
      }
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
  }

  public double loss(Map<String, double[]> override) throws OrtException {
    return run(override, Set.of("loss")).get("loss")[0];
  }

  /**
   * Compares every element of every trainable parameter's gradient with central differences (h
   * = {@code h}): each must satisfy {@code |analytic − numeric| ≤ atol + rtol·|numeric|}, and
   * every gradient must be non-negligible. Returns the largest absolute error.
   */
  public double assertGradientsMatch(double h, double atol, double rtol) throws OrtException {
    Set<String> gradOutputs = new LinkedHashSet<>();
    params.stream().filter(p -> !p.getFrozen()).forEach(p -> gradOutputs.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
    Map<String, double[]> grads = run(Map.of(), gradOutputs);
    StringBuilder failures = new StringBuilder();
    StringBuilder stats = new StringBuilder();
    double worst = 0;
    for (Parameter p : params) {
      if (p.getFrozen()) {
        continue;
      }
      double[] base = values.get(p.getName());
      double[] analytic = grads.get(p.getName() + GraftCompiler.GRADIENT_SUFFIX);
      assertEquals(base.length, analytic.length, p.getName());
      double normSq = 0;
      double maxErr = 0;
      for (int i = 0; i < base.length; i++) {
        double[] plus = base.clone();
        double[] minus = base.clone();
        plus[i] += h;
        minus[i] -= h;
        double numeric = (loss(Map.of(p.getName(), plus)) - loss(Map.of(p.getName(), minus))) / (2 * h);
        double err = Math.abs(analytic[i] - numeric);
        normSq += numeric * numeric;
        maxErr = Math.max(maxErr, err);
        if (!(err <= atol + rtol * Math.abs(numeric))) {
          failures.append(String.format("%n  %s[%d]: analytic %.8g, numeric %.8g", p.getName(), i, analytic[i], numeric));
        }
      }
      worst = Math.max(worst, maxErr);
      stats.append(String.format("%n  %s: |grad| %.3g, max err %.3g", p.getName(), Math.sqrt(normSq), maxErr));
      if (!(normSq > 1e-12)) {
        failures.append(String.format("%n  %s: gradient is negligible (|grad| %.3g)", p.getName(), Math.sqrt(normSq)));
      }
    }
    assertEquals("", failures.toString(), "gradients differ from central differences:" + stats);
    assertTrue(worst <= atol + 1, "finite");
    return worst;
  }

  @Override
  public void close() throws OrtException {
    train.close();
    hostWeights.values().forEach(OnnxTensor::close);
  }
}
