package dev.graft.runtime.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.session.Sessions;
import dev.graft.runtime.state.ParameterState;
import dev.graft.spec.manifest.DataParallelGraphs;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.TrainStep;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The training step in two halves, for data-parallel training: the gradient graph (forward and
 * backward: the loss and the gradients of a batch) and the apply graph (the training step's AdamW
 * update on given gradients, written into the parameter state as a training step would). Between
 * the halves, replicas average their gradients; applying the same average to the same state gives
 * every replica the same parameters.
 *
 * <p>Opened on first use by {@code AdapterModel}, on its own copy of the host weights (the gradient
 * graph reads them); both sessions are checked against the manifest's {@code data_parallel}.
 */
public final class GradientStep implements AutoCloseable {
  private final Manifest manifest;
  private final DataParallelGraphs names;
  private final Sessions.Extra sessions;
  private final List<Parameter> trained;
  private final List<long[]> shapes = new ArrayList<>();
  private final int length;

  private GradientStep(Manifest manifest, Sessions.Extra sessions) {
    this.manifest = manifest;
    this.names = manifest.getDataParallel();
    this.sessions = sessions;
    this.trained = manifest.getParametersList().stream().filter(p -> !p.getFrozen()).toList();
    long n = 0;
    for (Parameter p : trained) {
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      shapes.add(shape);
      long size = 1;
      for (long d : shape) {
        size = Math.multiplyExact(size, d);
      }
      n += size;
    }
    this.length = Math.toIntExact(n);
  }

  /**
   * Opens the gradient and apply graphs of {@code graphs}.
   *
   * @throws GraftException {@code GRAFT-R160} when the graft was compiled without them
   */
  public static GradientStep open(AdapterGraphs graphs, ModelOptions options) {
    Manifest manifest = graphs.manifest();
    if (!manifest.hasDataParallel() || graphs.gradientGraph() == null || graphs.applyGraph() == null) {
      throw new GraftException(RuntimeErrorCode.NO_DATA_PARALLEL_GRAPHS,
          "graft '" + graphs.name() + "' has no data-parallel gradient and apply graphs (" + graphs.name()
              + AdapterGraphs.GRADIENT_SUFFIX + ", " + graphs.name() + AdapterGraphs.APPLY_SUFFIX
              + " and the manifest's data_parallel); compile it with GraphVariant.GRADIENT");
    }
    String gradientName = graphs.name() + AdapterGraphs.GRADIENT_SUFFIX;
    String applyName = graphs.name() + AdapterGraphs.APPLY_SUFFIX;
    Sessions.Extra extra = Sessions.openGraphs(graphs, options, List.of(gradientName, applyName),
        List.of(graphs.gradientGraph(), graphs.applyGraph()));
    GradientStep step = new GradientStep(manifest, extra);
    try {
      step.check(gradientName, applyName);
    } catch (RuntimeException e) {
      extra.close();
      throw e;
    }
    return step;
  }

  /** Number of gradient values: the trained parameters' element count. */
  public int length() {
    return length;
  }

  private OrtSession gradientSession() {
    return sessions.sessions().get(0);
  }

  /**
   * Runs the gradient graph on {@code inputs} (the batch's tensors and the current parameters).
   *
   * @param examples the batch's rows
   */
  public Gradients gradients(Map<String, ? extends OnnxTensorLike> inputs, long examples) {
    Set<String> outputs = new LinkedHashSet<>();
    outputs.add(manifest.getTrain().getLoss());
    trained.forEach(p -> outputs.add(p.getName() + names.getGradientSuffix()));
    try (OrtSession.Result r = gradientSession().run(new HashMap<>(inputs), outputs)) {
      float loss = ((OnnxTensor) r.get(manifest.getTrain().getLoss()).orElseThrow()).getFloatBuffer().get(0);
      float[] values = new float[length];
      int at = 0;
      for (Parameter p : trained) {
        FloatBuffer g = ((OnnxTensor) r.get(p.getName() + names.getGradientSuffix()).orElseThrow()).getFloatBuffer();
        int n = g.remaining();
        g.get(values, at, n);
        at += n;
      }
      return new Gradients(loss, examples, values);
    } catch (OrtException e) {
      throw Sessions.failure("the gradient graph failed", e);
    }
  }

  /**
   * Runs the apply graph: {@code gradients} applied to {@code state} by the training step's AdamW
   * update at {@code learningRate}, committed as a training step is (nothing changes when the
   * update is not finite: {@code NonFiniteStepException}).
   */
  public void apply(ParameterState state, Gradients gradients, float learningRate, OrtEnvironment env) {
    if (gradients.values().length != length) {
      throw new TensorMismatchException("gradients", length + " values (the trained parameters' elements)",
          gradients.values().length + " values");
    }
    ParameterState.checkLearningRate(learningRate);
    List<OnnxTensor> owned = new ArrayList<>();
    try {
      Map<String, OnnxTensorLike> inputs = new HashMap<>(state.trainInputs(learningRate));
      int at = 0;
      for (int i = 0; i < trained.size(); i++) {
        long[] shape = shapes.get(i);
        int n = 1;
        for (long d : shape) {
          n *= (int) d;
        }
        OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(gradients.values(), at, n).slice(), shape);
        owned.add(t);
        inputs.put(trained.get(i).getName() + names.getGradientSuffix(), t);
        at += n;
      }
      TrainStep ts = manifest.getTrain();
      try (OrtSession.Result r = sessions.sessions().get(1).run(inputs, Set.of(ts.getFinite()), state.trainOutputs())) {
        boolean finite = ((OnnxTensor) r.get(ts.getFinite()).orElseThrow()).getByteBuffer().get(0) != 0;
        state.commit(gradients.loss(), finite);
      }
    } catch (OrtException e) {
      throw Sessions.failure("the apply graph failed at step " + (state.step() + 1), e);
    } finally {
      owned.forEach(OnnxTensor::close);
    }
  }

  /** The two sessions' inputs and outputs against the manifest. */
  private void check(String gradientName, String applyName) {
    TrainStep ts = manifest.getTrain();
    String suffix = names.getGradientSuffix();
    Set<String> gradOut = new TreeSet<>();
    gradOut.add(ts.getLoss());
    trained.forEach(p -> gradOut.add(p.getName() + suffix));
    Set<String> applyIn = new TreeSet<>(List.of(ts.getStep(), ts.getLearningRate()));
    Set<String> applyOut = new TreeSet<>(List.of(ts.getFinite()));
    for (Parameter p : manifest.getParametersList()) {
      applyIn.addAll(List.of(p.getName(), p.getName() + ts.getFirstMomentSuffix(), p.getName() + ts.getSecondMomentSuffix()));
      applyOut.addAll(List.of(p.getName() + ts.getUpdatedSuffix(),
          p.getName() + ts.getFirstMomentSuffix() + ts.getUpdatedSuffix(),
          p.getName() + ts.getSecondMomentSuffix() + ts.getUpdatedSuffix()));
      if (!p.getFrozen()) {
        applyIn.add(p.getName() + suffix);
      }
    }
    Set<String> missing = new TreeSet<>(gradOut);
    missing.removeAll(gradientSession().getOutputNames());
    Set<String> gotIn = sessions.sessions().get(1).getInputNames();
    Set<String> missingIn = new TreeSet<>(applyIn);
    missingIn.removeAll(gotIn);
    Set<String> extraIn = new TreeSet<>(gotIn);
    extraIn.removeAll(applyIn);
    Set<String> missingOut = new TreeSet<>(applyOut);
    missingOut.removeAll(sessions.sessions().get(1).getOutputNames());
    if (!missing.isEmpty()) {
      throw new FormatException(gradientName, "graph and manifest disagree: outputs missing " + missing);
    }
    if (!missingIn.isEmpty() || !extraIn.isEmpty() || !missingOut.isEmpty()) {
      throw new FormatException(applyName, "graph and manifest disagree: inputs missing " + missingIn
          + ", inputs the manifest does not name " + extraIn + ", outputs missing " + missingOut);
    }
  }

  @Override
  public void close() {
    sessions.close();
  }
}
