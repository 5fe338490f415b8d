package dev.graft.runtime.state;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.NonFiniteStepException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.session.DirectBuffers;
import dev.graft.runtime.session.HostWeights;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.TrainStep;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * The trainable state of an adapter model: every parameter, its AdamW moments and the step count.
 *
 * <p>Parameters and moments live in two sets of direct float buffers. A training step reads one
 * set as graph inputs ({@link #trainInputs}) and has ONNX Runtime write the updated values straight
 * into the other set ({@link #trainOutputs}, pinned outputs); {@link #commit(OrtSession.Result)}
 * then exchanges their roles. On CPU a step copies no parameter or optimizer state. A step whose loss or updated state
 * is not finite is not committed: the sets are not swapped, so the state is the one before it.
 *
 * <p>A quantized parameter's frozen {@code [μ, σ]} companion ({@code Init.QUANTIZE_STATS}) is
 * recomputed from the parameter ({@link QuantizedStats}) on {@link #initialize}, after every
 * committed step and on every {@link #setParameter} of the parameter; setting the companion itself
 * (a bit-packed load, after the parameter) stores the given values.
 */
public final class ParameterState implements ParameterStore, AutoCloseable {
  private final Manifest manifest;
  private final List<Parameter> parameters;
  private final Map<String, Integer> index = new HashMap<>();
  private final long[][] shapes;
  private final int[] sizes;
  /** Per parameter: the index of its {@code QUANTIZE_STATS} companion, or −1 when it is not quantized. */
  private final int[] stats;
  private final @Nullable TrainStep train;
  private StateSet current;
  private StateSet spare;
  private final FloatBuffer stepValue = DirectBuffers.floats(1);
  private final FloatBuffer learningRateValue = DirectBuffers.floats(1);
  private final @Nullable OnnxTensor stepTensor;
  private final @Nullable OnnxTensor learningRateTensor;
  private long step;

  /** One role-set of state: parameter, first and second moment per parameter, as tensors over direct buffers. */
  private static final class StateSet implements AutoCloseable {
    final FloatBuffer[] value;
    final FloatBuffer @Nullable [] first;
    final FloatBuffer @Nullable [] second;
    final Map<String, OnnxTensor> asInputs = new LinkedHashMap<>();
    final Map<String, OnnxTensor> asOutputs = new LinkedHashMap<>();
    final Map<String, OnnxTensor> parametersOnly = new LinkedHashMap<>();

    StateSet(OrtEnvironment env, List<Parameter> params, long[][] shapes, int[] sizes, @Nullable TrainStep train)
        throws OrtException {
      int n = params.size();
      value = new FloatBuffer[n];
      first = train == null ? null : new FloatBuffer[n];
      second = train == null ? null : new FloatBuffer[n];
      for (int i = 0; i < n; i++) {
        String p = params.get(i).getName();
        value[i] = DirectBuffers.floats(sizes[i]);
        OnnxTensor pt = OnnxTensor.createTensor(env, value[i], shapes[i]);
        parametersOnly.put(p, pt);
        asInputs.put(p, pt);
        if (train != null) {
          String upd = train.getUpdatedSuffix();
          asOutputs.put(p + upd, pt);
          first[i] = DirectBuffers.floats(sizes[i]);
          second[i] = DirectBuffers.floats(sizes[i]);
          OnnxTensor mt = OnnxTensor.createTensor(env, first[i], shapes[i]);
          OnnxTensor vt = OnnxTensor.createTensor(env, second[i], shapes[i]);
          asInputs.put(p + train.getFirstMomentSuffix(), mt);
          asInputs.put(p + train.getSecondMomentSuffix(), vt);
          asOutputs.put(p + train.getFirstMomentSuffix() + upd, mt);
          asOutputs.put(p + train.getSecondMomentSuffix() + upd, vt);
        }
      }
    }

    @Override
    public void close() {
      asInputs.values().forEach(OnnxTensor::close);
    }
  }

  /**
   * The state of {@code manifest}'s parameters, with AdamW moments and two buffer sets when
   * {@code train} is given (the training step's names), one set without moments otherwise.
   *
   * @throws FormatException for a parameter declared twice or with a non-positive dimension
   */
  public ParameterState(OrtEnvironment env, Manifest manifest, @Nullable TrainStep train) throws OrtException {
    this.manifest = manifest;
    this.parameters = List.copyOf(manifest.getParametersList());
    this.train = train;
    this.shapes = new long[parameters.size()][];
    this.sizes = new int[parameters.size()];
    for (int i = 0; i < parameters.size(); i++) {
      Parameter p = parameters.get(i);
      if (index.put(p.getName(), i) != null) {
        throw new FormatException(manifest.getName(), "parameter '" + p.getName() + "' is declared twice");
      }
      shapes[i] = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      long count = 1;
      for (long d : shapes[i]) {
        if (d <= 0) {
          throw new FormatException(
              manifest.getName(), "parameter '" + p.getName() + "' has shape " + Arrays.toString(shapes[i]));
        }
        count = Math.multiplyExact(count, d);
      }
      sizes[i] = Math.toIntExact(count);
    }
    this.stats = new int[parameters.size()];
    Arrays.fill(stats, -1);
    for (int i = 0; i < parameters.size(); i++) {
      Parameter p = parameters.get(i);
      String of = p.getQuantizeStatsOf();
      if (of.isEmpty() != (p.getInit() != Init.QUANTIZE_STATS)) {
        throw new FormatException(manifest.getName(), "parameter '" + p.getName() + "' has init " + p.getInit()
            + " and quantize_stats_of '" + of + "': a QUANTIZE_STATS parameter names its quantized parameter, no other does");
      }
      if (of.isEmpty()) {
        continue;
      }
      Integer target = index.get(of);
      if (target == null || parameters.get(target).getQuantizeBits() == 0 || stats[target] >= 0
          || !p.getFrozen() || sizes[i] != 2) {
        throw new FormatException(manifest.getName(), "parameter '" + p.getName() + "' must be frozen, of two values,"
            + " and the only statistics of a quantized parameter; quantize_stats_of names '" + of + "'");
      }
      stats[target] = i;
    }
    for (int i = 0; i < parameters.size(); i++) {
      if (parameters.get(i).getQuantizeBits() > 0 && stats[i] < 0) {
        throw new FormatException(manifest.getName(), "quantized parameter '" + parameters.get(i).getName()
            + "' has no QUANTIZE_STATS parameter");
      }
    }
    StateSet a = null;
    try {
      a = new StateSet(env, parameters, shapes, sizes, train);
      this.current = a;
      this.spare = train != null ? new StateSet(env, parameters, shapes, sizes, train) : a;
      this.stepTensor = train != null ? OnnxTensor.createTensor(env, stepValue, new long[0]) : null;
      this.learningRateTensor = train != null ? OnnxTensor.createTensor(env, learningRateValue, new long[0]) : null;
    } catch (OrtException | RuntimeException e) {
      if (a != null) {
        a.close();
      }
      if (spare != null && spare != a) {
        spare.close();
      }
      throw e;
    }
  }

  @Override
  public Manifest getManifest() {
    return manifest;
  }

  /** The parameters as the manifest declares them, in manifest order. */
  public List<Parameter> parameters() {
    return parameters;
  }

  /** Whether the state holds AdamW moments (the model trains). */
  public boolean trainable() {
    return train != null;
  }

  /** Number of trainable values (frozen parameters do not count). */
  public long parameterCount() {
    long n = 0;
    for (int i = 0; i < sizes.length; i++) {
      n += parameters.get(i).getFrozen() ? 0 : sizes[i];
    }
    return n;
  }

  /** The shape of parameter {@code name} (a copy). */
  public long[] shape(String name) {
    return shapes[indexOf(name)].clone();
  }

  @Override
  public float[] getParameter(String name) {
    return copyOut(current.value[indexOf(name)]);
  }

  @Override
  public void setParameter(String name, float[] values) {
    int i = indexOf(name);
    copyIn(name, i, current.value[i], values);
    refreshStats(i);
  }

  /** Recomputes the {@code [μ, σ]} companion of parameter {@code i} from its current values, when it is quantized. */
  private void refreshStats(int i) {
    if (stats[i] >= 0) {
      FloatBuffer b = current.value[stats[i]].duplicate();
      b.clear();
      b.put(QuantizedStats.of(copyOut(current.value[i])));
    }
  }

  private void refreshAllStats() {
    for (int i = 0; i < parameters.size(); i++) {
      refreshStats(i);
    }
  }

  /** All parameters by name (copies), in manifest order. */
  public Map<String, float[]> values() {
    Map<String, float[]> out = new LinkedHashMap<>();
    for (Parameter p : parameters) {
      out.put(p.getName(), getParameter(p.getName()));
    }
    return Collections.unmodifiableMap(out);
  }

  /** The direct buffer that holds parameter {@code name} now. */
  public FloatBuffer currentBuffer(String name) {
    return current.value[indexOf(name)];
  }

  /** A copy of an AdamW moment of parameter {@code name} (first or second), as it is now. */
  public float[] moment(String name, boolean second) {
    return copyOut(moments(second)[indexOf(name)]);
  }

  /** Replaces an AdamW moment of parameter {@code name} (first or second) in the current set. */
  public void setMoment(String name, boolean second, float[] values) {
    int i = indexOf(name);
    copyIn(name, i, moments(second)[i], values);
  }

  private FloatBuffer[] moments(boolean second) {
    FloatBuffer[] set = second ? current.second : current.first;
    if (set == null) {
      throw new GraftException(
          RuntimeErrorCode.ARGUMENT, "this model was opened for inference only; it has no optimizer state");
    }
    return set;
  }

  /**
   * The largest learning rate a step takes. AdamW moves each parameter by about the learning rate
   * per step, so a rate above 1 is never a working rate, only an overflow waiting to happen.
   */
  public static final float MAX_LEARNING_RATE = 1f;

  /** Checks that {@code rate} is a learning rate: finite and in {@code [0, MAX_LEARNING_RATE]}. */
  public static void checkLearningRate(float rate) {
    if (!(rate >= 0 && rate <= MAX_LEARNING_RATE)) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "learning rate must be finite and in [0, " + MAX_LEARNING_RATE + "], got " + rate);
    }
  }

  /** Steps taken since the state was initialized (or the optimizer reset). */
  public long step() {
    return step;
  }

  /** Sets the number of steps taken (the next step's bias correction uses {@code step + 1}). */
  public void setStep(long value) {
    if (value < 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "step must be >= 0, got " + value);
    }
    step = value;
  }

  /** Sets every parameter to its initial value (seeded) and the optimizer state and step count to zero. */
  public void initialize(long seed, HostWeights host) {
    for (int i = 0; i < parameters.size(); i++) {
      float[] v = ParameterInit.initialValues(parameters.get(i), sizes[i], seed, host);
      current.value[i].clear();
      current.value[i].put(v).clear();
    }
    refreshAllStats();
    resetOptimizer();
  }

  /** Zeroes the AdamW moments of both buffer sets and restarts the step count (bias correction) at 1. */
  public void resetOptimizer() {
    for (StateSet s : new StateSet[] {current, spare}) {
      if (s.first != null && s.second != null) {
        for (int i = 0; i < parameters.size(); i++) {
          zero(s.first[i]);
          zero(s.second[i]);
        }
      }
    }
    step = 0;
  }

  /** The current parameters, as inference graph inputs. */
  public Map<String, OnnxTensor> inferenceInputs() {
    return current.parametersOnly;
  }

  /**
   * The training step's state inputs: the current parameters and moments, and the step number
   * ({@code step + 1}) and learning rate as scalars.
   */
  public Map<String, OnnxTensor> trainInputs(float learningRate) {
    TrainStep ts = requireTrain();
    stepValue.put(0, (float) (step + 1));
    learningRateValue.put(0, learningRate);
    Map<String, OnnxTensor> out = new HashMap<>(current.asInputs);
    out.put(ts.getStep(), stepTensor);
    out.put(ts.getLearningRate(), learningRateTensor);
    return out;
  }

  /** The other buffer set, as the pinned outputs the training step writes its updates into. */
  public Map<String, OnnxTensor> trainOutputs() {
    requireTrain();
    return spare.asOutputs;
  }

  /** The outputs a training step's result must hold for {@link #commit}: the loss and, when the graph has it, the finite guard. */
  public Set<String> trainResults() {
    TrainStep ts = requireTrain();
    return ts.getFinite().isEmpty() ? Set.of(ts.getLoss()) : Set.of(ts.getLoss(), ts.getFinite());
  }

  /**
   * After a training step: when its loss and updated state are finite (the guard output, where the
   * graph has one), the updated set becomes current and the step count advances; otherwise
   * nothing changes.
   *
   * @return the step's loss
   * @throws NonFiniteStepException when the loss or the state is not finite (nothing committed)
   */
  public float commit(OrtSession.Result result) {
    TrainStep ts = requireTrain();
    float loss = ((OnnxTensor) result.get(ts.getLoss()).orElseThrow()).getFloatBuffer().get(0);
    boolean finite = ts.getFinite().isEmpty()
        || ((OnnxTensor) result.get(ts.getFinite()).orElseThrow()).getByteBuffer().get(0) != 0;
    commit(loss, finite);
    return loss;
  }

  /**
   * Commits a step from its loss and whether the updated parameters and moments (written into the
   * {@link #trainOutputs}) are all finite, as {@link #commit(OrtSession.Result)} does.
   */
  public void commit(float loss, boolean stateFinite) {
    if (!Float.isFinite(loss) || !stateFinite) {
      throw new NonFiniteStepException(step + 1, loss);
    }
    StateSet t = current;
    current = spare;
    spare = t;
    step++;
    refreshAllStats();
  }

  /**
   * The first tensor of the current state (parameter, or moment as {@code <parameter>.adam_m} /
   * {@code .adam_v}) holding a NaN or infinite value, or {@code null} when all are finite.
   */
  public @Nullable String firstNonFinite() {
    for (int i = 0; i < parameters.size(); i++) {
      String p = parameters.get(i).getName();
      if (!finite(current.value[i])) {
        return p;
      }
      if (train != null && current.first != null && current.second != null) {
        if (!finite(current.first[i])) {
          return p + train.getFirstMomentSuffix();
        }
        if (!finite(current.second[i])) {
          return p + train.getSecondMomentSuffix();
        }
      }
    }
    return null;
  }

  private static boolean finite(FloatBuffer b) {
    for (int i = 0; i < b.capacity(); i++) {
      if (!Float.isFinite(b.get(i))) {
        return false;
      }
    }
    return true;
  }

  private TrainStep requireTrain() {
    if (train == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "this model was opened for inference only; it cannot train");
    }
    return train;
  }

  private int indexOf(String name) {
    Integer i = index.get(name);
    if (i == null) {
      throw new GraftException(
          RuntimeErrorCode.UNKNOWN_NAME, "no parameter named '" + name + "'; parameters: " + index.keySet());
    }
    return i;
  }

  private static float[] copyOut(FloatBuffer buffer) {
    FloatBuffer b = buffer.duplicate();
    b.clear();
    float[] out = new float[b.remaining()];
    b.get(out);
    return out;
  }

  /** Writes {@code values} into the buffer of parameter {@code i} (or one of its moments), checking the length. */
  private void copyIn(String name, int i, FloatBuffer buffer, float[] values) {
    if (values.length != sizes[i]) {
      throw new TensorMismatchException(
          name, "float32" + Arrays.toString(shapes[i]) + " = " + sizes[i] + " values", values.length + " values");
    }
    FloatBuffer b = buffer.duplicate();
    b.clear();
    b.put(values);
  }

  private static void zero(FloatBuffer b) {
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, 0f);
    }
  }

  @Override
  public void close() {
    current.close();
    if (spare != current) {
      spare.close();
    }
    if (stepTensor != null) {
      stepTensor.close();
    }
    if (learningRateTensor != null) {
      learningRateTensor.close();
    }
  }
}
