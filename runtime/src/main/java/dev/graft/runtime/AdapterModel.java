package dev.graft.runtime;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import ai.onnxruntime.ValueInfo;
import com.google.protobuf.CodedInputStream;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.io.DyLoraRanks;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.TrainStep;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * A compiled adapter on its host, open on ONNX Runtime: an inference session and (unless
 * disabled) a training-step session, both fed the host's frozen weights once.
 *
 * <p>Trainable parameters and their AdamW moments live in two sets of direct float buffers. A
 * training step reads one set as graph inputs and has ONNX Runtime write the updated values
 * straight into the other set (pinned outputs); then the sets swap roles. On CPU a step copies
 * no parameter or optimizer state.
 *
 * <p>Not thread-safe: use one model from one thread at a time.
 */
public final class AdapterModel implements ParameterStore, AutoCloseable {
  private static final String INPUT_IDS = "input_ids";
  private final Manifest manifest;
  private final OrtEnvironment env;
  private final HostWeights host;
  private final OrtSession inference;
  private final @Nullable OrtSession training;
  private final List<Parameter> parameters;
  private final Map<String, Integer> index;
  private final long[][] shapes;
  private final int[] sizes;
  private final long seed;
  /** Named adapters switched on (their gates fed true); every gated adapter at first. */
  private final Set<String> active = new TreeSet<>();
  private StateSet current;
  private StateSet spare;
  private final FloatBuffer stepValue;
  private final FloatBuffer learningRateValue;
  private final @Nullable OnnxTensor stepTensor;
  private final @Nullable OnnxTensor learningRateTensor;
  private final @Nullable ElementType labelType;
  private final Loss loss;
  private final @Nullable ElementType seedType;
  private long step;
  private boolean closed;

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
        value[i] = directFloats(sizes[i]);
        OnnxTensor pt = OnnxTensor.createTensor(env, value[i], shapes[i]);
        parametersOnly.put(p, pt);
        asInputs.put(p, pt);
        if (train != null) {
          String upd = train.getUpdatedSuffix();
          asOutputs.put(p + upd, pt);
          first[i] = directFloats(sizes[i]);
          second[i] = directFloats(sizes[i]);
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

  private AdapterModel(AdapterGraphs graphs, ModelOptions options) {
    this.manifest = graphs.manifest();
    this.loss = lossOf(manifest);
    this.env = OrtEnvironment.getEnvironment();
    this.seed = options.seed();
    activeAtOpen(manifest, active);
    this.parameters = List.copyOf(manifest.getParametersList());
    this.index = new HashMap<>();
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
    boolean train = options.training() && graphs.trainGraph() != null;
    if (options.training() && graphs.trainGraph() == null) {
      throw new GraftException(
          ErrorCodes.IO,
          "adapter '" + graphs.name() + "' has no training graph (" + graphs.name() + AdapterGraphs.TRAIN_SUFFIX
              + "); open it with ModelOptions.withTraining(false) for inference only");
    }
    TrainStep ts = train ? manifest.getTrain() : null;

    ModelProto inferProto = parseGraph(graphs.name() + AdapterGraphs.INFER_SUFFIX, graphs.inferenceGraph());
    ModelProto trainProto =
        train ? parseGraph(graphs.name() + AdapterGraphs.TRAIN_SUFFIX, graphs.trainGraph()) : null;

    this.host = openHost(graphs, options);
    OrtSession inf = null;
    OrtSession trn = null;
    StateSet a = null;
    StateSet b = null;
    try {
      inf = openSession(graphs.name() + AdapterGraphs.INFER_SUFFIX, graphs.inferenceGraph(), inferProto, options);
      if (train) {
        trn = openSession(graphs.name() + AdapterGraphs.TRAIN_SUFFIX, graphs.trainGraph(), trainProto, options);
      }
      a = new StateSet(env, parameters, shapes, sizes, ts);
      b = train ? new StateSet(env, parameters, shapes, sizes, ts) : a;
      this.stepValue = directFloats(1);
      this.learningRateValue = directFloats(1);
      this.stepTensor = train ? OnnxTensor.createTensor(env, stepValue, new long[0]) : null;
      this.learningRateTensor = train ? OnnxTensor.createTensor(env, learningRateValue, new long[0]) : null;
    } catch (OrtException e) {
      closeQuietly(inf, trn, a, b);
      host.close();
      throw ort("cannot open the adapter's sessions", e);
    } catch (RuntimeException e) {
      closeQuietly(inf, trn, a, b);
      host.close();
      throw e;
    }
    this.inference = inf;
    this.training = trn;
    this.current = a;
    this.spare = b;
    try {
      checkSession(graphs.name() + AdapterGraphs.INFER_SUFFIX, inf, false);
      this.labelType = trn != null ? checkSession(graphs.name() + AdapterGraphs.TRAIN_SUFFIX, trn, true) : null;
      this.seedType = trn != null && !ts.getSeed().isEmpty() ? inputType(trn, ts.getSeed()) : null;
    } catch (RuntimeException e) {
      close();
      throw e;
    }
    initialize();
  }

  /** Every gated (named) adapter of {@code m}: all are on when a model opens. */
  private static void activeAtOpen(dev.graft.spec.manifest.Manifest m, Set<String> into) {
    m.getAdaptersList().stream().filter(a -> !a.getGate().isEmpty()).forEach(a -> into.add(a.getName()));
  }

  /** Opens the adapter with default options (CPU, seed 42, host from the manifest). */
  public static AdapterModel open(AdapterGraphs graphs) {
    return open(graphs, ModelOptions.defaults());
  }

  /** Opens the adapter: reads the host weights, creates the sessions and initializes the parameters. */
  public static AdapterModel open(AdapterGraphs graphs, ModelOptions options) {
    return new AdapterModel(graphs, options);
  }

  /**
   * Opens the graft named {@code name} whose resources lie in the package of {@code anchor}
   * (the generated {@code <Name>Graft} class calls this), with default options.
   */
  public static AdapterModel load(Class<?> anchor, String name) {
    return load(anchor, name, ModelOptions.defaults());
  }

  /** Opens the graft named {@code name} whose resources lie in the package of {@code anchor}. */
  public static AdapterModel load(Class<?> anchor, String name, ModelOptions options) {
    return open(AdapterGraphs.fromClasspath(anchor, name), options);
  }

  /**
   * Saves the trained parameters as a Hugging Face PEFT adapter folder ({@code
   * adapter_config.json} + {@code adapter_model.safetensors}), each file replaced atomically.
   */
  public void saveAdapter(Path dir) {
    checkOpen();
    PeftAdapters.save(this, dir);
  }

  /** Loads a PEFT adapter folder saved for this graft (checked against the manifest) into the parameters. */
  public void loadAdapter(Path dir) {
    checkOpen();
    PeftAdapters.load(this, dir);
  }

  /** Saves named adapter {@code name} alone (its parameters and its own adapter_config.json), each file replaced atomically. */
  public void saveAdapter(Path dir, String name) {
    checkOpen();
    PeftAdapters.saveNamed(this, dir, name);
  }

  /** Loads a folder saved for named adapter {@code name} into it (trained or frozen), checked against its config, keys and shapes. */
  public void loadAdapter(Path dir, String name) {
    checkOpen();
    PeftAdapters.loadNamed(this, dir, name);
  }

  /**
   * Switches on exactly the named adapters {@code names} (the others with a gate become the
   * identity) in both inference and training; adapters without a gate (unnamed) stay on.
   *
   * @throws GraftException for a name that is not a gated adapter, listing those that are
   */
  public void activate(String... names) {
    activate(List.of(names));
  }

  public void activate(List<String> names) {
    checkOpen();
    Set<String> gated = gatedAdapters();
    for (String n : names) {
      if (!gated.contains(n)) {
        throw new GraftException(ErrorCodes.ARGUMENT, "graft '" + manifest.getName() + "' has no gated adapter named '"
            + n + "'; its gated (named) adapters are " + gated);
      }
    }
    active.clear();
    active.addAll(names);
  }

  /** Switches on every named adapter (the state a model opens in). */
  public void activateAll() {
    checkOpen();
    active.clear();
    active.addAll(gatedAdapters());
  }

  /** The named adapters switched on, sorted. */
  public Set<String> activeAdapters() {
    return java.util.Collections.unmodifiableSet(new TreeSet<>(active));
  }

  private Set<String> gatedAdapters() {
    Set<String> out = new TreeSet<>();
    manifest.getAdaptersList().stream().filter(a -> !a.getGate().isEmpty()).forEach(a -> out.add(a.getName()));
    return out;
  }

  /** A bool scalar per gate input, true where its adapter is active. */
  private Map<String, OnnxTensor> gateTensors() throws OrtException {
    Map<String, OnnxTensor> out = new HashMap<>();
    for (dev.graft.spec.manifest.Adapter a : manifest.getAdaptersList()) {
      if (!a.getGate().isEmpty()) {
        out.put(a.getGate(), OnnxTensor.createTensor(env, active.contains(a.getName())));
      }
    }
    return out;
  }

  /**
   * Saves the adapter with its DyLoRA adapters at rank {@code rank} (1 up to their maximum) as a
   * plain PEFT LoRA folder of that rank ({@code r = rank}, {@code lora_alpha} the DyLoRA alpha);
   * a Graft LoRA of that rank and alpha on the same sites, or PEFT, loads it. Every adapter of
   * the graft must be DyLoRA.
   */
  public void saveAdapter(Path dir, int rank) {
    checkOpen();
    DyLoraRanks.save(this, dir, rank);
  }

  /**
   * Makes this model's DyLoRA adapters act at rank {@code rank} (1 up to their maximum) from now
   * on: A's columns and B's rows from {@code rank} on are zeroed and B's first rows multiplied by
   * {@code maxRank / rank}, so the scaling becomes {@code alpha / rank}. It replaces the values:
   * save the adapter first to go back. At the maximum rank nothing changes.
   */
  public void truncateRank(int rank) {
    checkOpen();
    DyLoraRanks.truncate(this, rank);
  }

  // ---------------------------------------------------------------- opening

  private static ModelProto parseGraph(String source, byte[] bytes) {
    try {
      CodedInputStream in = CodedInputStream.newInstance(bytes);
      in.setSizeLimit(Integer.MAX_VALUE);
      return ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new FormatException(source, "not an ONNX model: " + e.getMessage(), e);
    }
  }

  private HostWeights openHost(AdapterGraphs graphs, ModelOptions options) {
    List<String> names = manifest.getHostInitializersList();
    if (names.isEmpty()) {
      return HostWeights.none();
    }
    Path file = options.host();
    if (file != null) {
      return HostWeights.read(file, names);
    }
    String host = manifest.getHost();
    if (host.isEmpty()) {
      throw new FormatException(manifest.getName(), "the manifest names no host; give it with ModelOptions.withHost");
    }
    if (graphs.classLoader().getResource(host) != null) {
      return HostWeights.readResource(graphs.classLoader(), host, names);
    }
    Path p = Path.of(host);
    if (Files.isRegularFile(p)) {
      return HostWeights.read(p, names);
    }
    throw new GraftException(
        ErrorCodes.IO,
        "host model '" + host + "' is neither a classpath resource nor a file; add the jar that holds it,"
            + " or give the host file with ModelOptions.withHost(Path)");
  }

  private OrtSession openSession(String source, byte[] bytes, ModelProto proto, ModelOptions options)
      throws OrtException {
    List<String> external = new ArrayList<>();
    for (TensorProto init : proto.getGraph().getInitializerList()) {
      if (init.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
        continue;
      }
      HostWeights.Weight w = host.weights().get(init.getName());
      if (w == null) {
        throw new FormatException(
            source,
            "initializer '" + init.getName() + "' is external data but not in the manifest's host_initializers");
      }
      long[] dims = init.getDimsList().stream().mapToLong(Long::longValue).toArray();
      if (!Arrays.equals(dims, w.dims()) || init.getDataType() != w.dataType()) {
        throw new TensorMismatchException(
            init.getName(),
            ElementType.describe(init.getDataType()) + Arrays.toString(dims) + " (declared by " + source + ")",
            ElementType.describe(w.dataType()) + Arrays.toString(w.dims()) + " (in host " + host.source() + ")",
            "the host differs from the one the adapter was compiled against");
      }
      external.add(init.getName());
    }
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      if (options.intraOpThreads() > 0) {
        so.setIntraOpNumThreads(options.intraOpThreads());
      }
      if (options.device() == Device.CUDA) {
        try {
          so.addCUDA(options.cudaDeviceId());
        } catch (OrtException e) {
          throw new ExecutionProviderException(
              "CUDA was asked for but the ONNX Runtime on the classpath cannot use it (" + e.getCode() + ": "
                  + e.getMessage() + "). Depend on com.microsoft.onnxruntime:onnxruntime_gpu (CUDA 12, cuDNN 9)"
                  + " instead of com.microsoft.onnxruntime:onnxruntime, or use Device.CPU",
              e);
        }
      }
      if (!external.isEmpty()) {
        so.addExternalInitializers(host.subset(external));
      }
      return env.createSession(bytes, so);
    }
  }

  /** Checks the session's inputs and outputs against the manifest; returns the labels' element type (training). */
  private @Nullable ElementType checkSession(String source, OrtSession session, boolean train) {
    Set<String> expectedIn = new TreeSet<>();
    Set<String> expectedOut = new TreeSet<>();
    for (HostInput in : manifest.getInputsList()) {
      expectedIn.add(in.getName());
    }
    TrainStep ts = manifest.getTrain();
    for (Parameter p : parameters) {
      expectedIn.add(p.getName());
      if (train) {
        expectedIn.add(p.getName() + ts.getFirstMomentSuffix());
        expectedIn.add(p.getName() + ts.getSecondMomentSuffix());
        expectedOut.add(p.getName() + ts.getUpdatedSuffix());
        expectedOut.add(p.getName() + ts.getFirstMomentSuffix() + ts.getUpdatedSuffix());
        expectedOut.add(p.getName() + ts.getSecondMomentSuffix() + ts.getUpdatedSuffix());
      }
    }
    // Named adapters and composition: every gate is an input of both graphs.
    manifest.getAdaptersList().stream().filter(a -> !a.getGate().isEmpty()).forEach(a -> expectedIn.add(a.getGate()));
    if (train) {
      expectedIn.add(ts.getLabels());
      expectedIn.add(ts.getStep());
      expectedIn.add(ts.getLearningRate());
      if (!ts.getSeed().isEmpty()) {
        expectedIn.add(ts.getSeed());
      }
      expectedOut.add(ts.getLoss());
    } else {
      expectedOut.add(manifest.getLogits());
    }
    Set<String> missing = new TreeSet<>(expectedIn);
    missing.removeAll(session.getInputNames());
    Set<String> extra = new TreeSet<>(session.getInputNames());
    extra.removeAll(expectedIn);
    Set<String> missingOut = new TreeSet<>(expectedOut);
    missingOut.removeAll(session.getOutputNames());
    if (!missing.isEmpty() || !extra.isEmpty() || !missingOut.isEmpty()) {
      throw new FormatException(
          source,
          "graph and manifest disagree: inputs the manifest names but the graph lacks " + missing
              + ", graph inputs the manifest does not name " + extra + ", outputs missing " + missingOut);
    }
    for (int i = 0; i < parameters.size(); i++) {
      checkInput(session, source, parameters.get(i).getName(), ElementType.FLOAT, shapes[i]);
      if (train) {
        checkInput(session, source, parameters.get(i).getName() + ts.getFirstMomentSuffix(), ElementType.FLOAT, shapes[i]);
        checkInput(session, source, parameters.get(i).getName() + ts.getSecondMomentSuffix(), ElementType.FLOAT, shapes[i]);
      }
    }
    if (!train) {
      return null;
    }
    checkInput(session, source, ts.getStep(), ElementType.FLOAT, new long[0]);
    checkInput(session, source, ts.getLearningRate(), ElementType.FLOAT, new long[0]);
    ElementType labels = inputType(session, ts.getLabels());
    boolean floats = loss == Loss.MEAN_SQUARED_ERROR || loss == Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
    if (floats ? labels != ElementType.FLOAT : labels != ElementType.INT64 && labels != ElementType.INT32) {
      throw new TensorMismatchException(
          ts.getLabels(), (floats ? "float32" : "int64") + " labels for " + loss, String.valueOf(labels), source);
    }
    return labels;
  }

  private static void checkInput(OrtSession session, String source, String name, ElementType type, long[] shape) {
    TensorInfo info = tensorInfo(session, name);
    if (info.type != type.javaType || !Arrays.equals(info.getShape(), shape)) {
      throw new TensorMismatchException(
          name,
          type.name().toLowerCase(java.util.Locale.ROOT) + Arrays.toString(shape) + " (manifest)",
          info.type.name().toLowerCase(java.util.Locale.ROOT) + Arrays.toString(info.getShape()) + " (" + source + ")");
    }
  }

  private static TensorInfo tensorInfo(OrtSession session, String name) {
    try {
      NodeInfo node = session.getInputInfo().get(name);
      ValueInfo info = node == null ? null : node.getInfo();
      if (!(info instanceof TensorInfo t)) {
        throw new GraftException(ErrorCodes.UNKNOWN_NAME, "graph input '" + name + "' is not a tensor");
      }
      return t;
    } catch (OrtException e) {
      throw ort("cannot read the inputs of a session", e);
    }
  }

  private static ElementType inputType(OrtSession session, String name) {
    OnnxJavaType t = tensorInfo(session, name).type;
    for (ElementType e : ElementType.values()) {
      if (e.javaType == t) {
        return e;
      }
    }
    throw new GraftException(ErrorCodes.UNKNOWN_NAME, "graph input '" + name + "' has unsupported type " + t);
  }

  /** Sets every parameter to its initial value (seeded) and the optimizer state and step count to zero. */
  public void initialize() {
    checkOpen();
    for (int i = 0; i < parameters.size(); i++) {
      float[] v = ParameterInit.initialValues(parameters.get(i), sizes[i], seed, host);
      current.value[i].clear();
      current.value[i].put(v).clear();
    }
    resetOptimizer();
  }

  /** Zeroes the AdamW moments of both buffer sets and restarts the step count (bias correction) at 1. */
  public void resetOptimizer() {
    checkOpen();
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

  // ---------------------------------------------------------------- running

  /** The loss the graft trains with (softmax cross-entropy for manifests that predate tasks). */
  public Loss getLoss() {
    return loss;
  }

  private static Loss lossOf(Manifest m) {
    Loss l = m.hasTask() ? m.getTask().getLoss() : Loss.LOSS_UNSPECIFIED;
    return l == Loss.LOSS_UNSPECIFIED || l == Loss.UNRECOGNIZED ? Loss.SOFTMAX_CROSS_ENTROPY : l;
  }

  /** The ignore index of the labels, if the task has one (softmax cross-entropy of a task-aware manifest, causal LM). */
  private @Nullable Long ignoreIndex() {
    return manifest.hasTask() && (loss == Loss.SOFTMAX_CROSS_ENTROPY || loss == Loss.CAUSAL_LM_CROSS_ENTROPY)
        ? manifest.getTask().getIgnoreIndex() : null;
  }

  private void requireLoss(String call, Loss... accepted) {
    for (Loss l : accepted) {
      if (l == loss) {
        return;
      }
    }
    String right = switch (loss) {
      case MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY_WITH_LOGITS -> "trainStep(hostInputs, float[][] targets, learningRate)";
      case CAUSAL_LM_CROSS_ENTROPY -> "trainStep(hostInputs, learningRate) or trainStep(hostInputs, long[][] labels, learningRate)";
      default -> "trainStep(hostInputs, long[] labels, learningRate)";
    };
    throw new GraftException(
        ErrorCodes.ARGUMENT, call + " does not fit this graft, whose loss is " + loss + "; call " + right);
  }

  /**
   * Runs one training step of a classification graft: forward, backward and the AdamW update, on
   * a batch of host inputs ({@code [batch, sequence]} per host input name) and class labels
   * ({@code [batch]}, each in {@code [0, num_labels)} or the ignore index).
   *
   * @return the batch loss before the update
   */
  public float trainStep(Map<String, long[][]> hostInputs, long[] labels, float learningRate) {
    requireLoss("trainStep(hostInputs, long[] labels, learningRate)", Loss.SOFTMAX_CROSS_ENTROPY);
    return step(hostInputs, learningRate, batch -> {
      String name = manifest.getTrain().getLabels();
      if (labels.length != batch) {
        throw new TensorMismatchException(name, "[" + batch + "] (one label per example)", "[" + labels.length + "]");
      }
      int numLabels = manifest.getHead().getNumLabels();
      Long ignore = ignoreIndex();
      for (int i = 0; i < labels.length; i++) {
        boolean ignored = ignore != null && labels[i] == ignore;
        if (!ignored && (labels[i] < 0 || (numLabels > 0 && labels[i] >= numLabels))) {
          throw new TensorMismatchException(
              name, "labels in [0, " + numLabels + ")" + (ignore == null ? "" : " or the ignore index " + ignore),
              "labels[" + i + "] = " + labels[i]);
        }
      }
      return labelTensor(labels);
    });
  }

  /**
   * Runs one training step of a regression or multi-label graft on float targets {@code
   * [batch][outputs]} (regression: any finite values; multi-label: values in [0, 1]).
   *
   * @return the batch loss before the update
   */
  public float trainStep(Map<String, long[][]> hostInputs, float[][] targets, float learningRate) {
    requireLoss("trainStep(hostInputs, float[][] targets, learningRate)",
        Loss.MEAN_SQUARED_ERROR, Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS);
    return step(hostInputs, learningRate, batch -> {
      String name = manifest.getTrain().getLabels();
      int n = manifest.getHead().getNumLabels();
      if (targets.length != batch) {
        throw new TensorMismatchException(name, "float32[" + batch + ", " + n + "]", "[" + targets.length + "][…]");
      }
      boolean binary = loss == Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
      FloatBuffer b = directFloats(batch * n);
      for (int i = 0; i < batch; i++) {
        if (targets[i].length != n) {
          throw new TensorMismatchException(
              name, "float32[" + batch + ", " + n + "]", "row " + i + " has " + targets[i].length + " values");
        }
        for (int j = 0; j < n; j++) {
          float v = targets[i][j];
          if (!Float.isFinite(v) || (binary && (v < 0 || v > 1))) {
            throw new TensorMismatchException(
                name, binary ? "targets in [0, 1]" : "finite targets", "targets[" + i + "][" + j + "] = " + v);
          }
          b.put(v);
        }
      }
      return OnnxTensor.createTensor(env, b.clear(), new long[] {batch, n});
    });
  }

  /**
   * Runs one training step of a causal LM graft, the labels being the batch's {@code input_ids}
   * (each position learns the next token; positions whose next token is padding are left out).
   *
   * @return the batch loss before the update
   */
  public float trainStep(Map<String, long[][]> hostInputs, float learningRate) {
    requireLoss("trainStep(hostInputs, learningRate)", Loss.CAUSAL_LM_CROSS_ENTROPY);
    long[][] ids = hostInputs.get(INPUT_IDS);
    if (ids == null) {
      throw new GraftException(ErrorCodes.UNKNOWN_NAME, "the causal LM loss takes its labels from host input '"
          + INPUT_IDS + "', which is missing; given " + new TreeSet<>(hostInputs.keySet()));
    }
    return trainStep(hostInputs, ids, learningRate);
  }

  /**
   * Runs one training step of a causal LM graft with explicit token labels {@code [batch,
   * sequence]} (same shape as {@code input_ids}): position t learns {@code labels[t+1]}; labels
   * equal to the ignore index, and positions whose next token has attention mask 0, are left out.
   *
   * @return the batch loss before the update
   */
  public float trainStep(Map<String, long[][]> hostInputs, long[][] labels, float learningRate) {
    requireLoss("trainStep(hostInputs, long[][] labels, learningRate)", Loss.CAUSAL_LM_CROSS_ENTROPY);
    return step(hostInputs, learningRate, batch -> {
      String name = manifest.getTrain().getLabels();
      long[][] first = hostInputs.values().iterator().next();
      int seq = first[0].length;
      long vocab = manifest.getTask().getNumOutputs();
      long ignore = manifest.getTask().getIgnoreIndex();
      if (labels.length != batch) {
        throw new TensorMismatchException(name, "[" + batch + ", " + seq + "] (as input_ids)", "[" + labels.length + ", …]");
      }
      LongBuffer b = directLongs(batch * seq);
      for (int i = 0; i < batch; i++) {
        if (labels[i].length != seq) {
          throw new TensorMismatchException(
              name, "[" + batch + ", " + seq + "] (as input_ids)", "row " + i + " has " + labels[i].length + " values");
        }
        for (int t = 0; t < seq; t++) {
          long v = labels[i][t];
          if (v != ignore && (v < 0 || (vocab > 0 && v >= vocab))) {
            throw new TensorMismatchException(
                name, "token ids in [0, " + vocab + ") or the ignore index " + ignore, "labels[" + i + "][" + t + "] = " + v);
          }
        }
        b.put(labels[i]);
      }
      return OnnxTensor.createTensor(env, b.clear(), new long[] {batch, seq});
    });
  }

  /**
   * Runs one training step on a batch, with the labels its task needs: class labels, float
   * targets, or (causal LM) none — the labels are the batch's {@code input_ids}.
   */
  public float trainStep(Batch batch, float learningRate) {
    return switch (loss) {
      case MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY_WITH_LOGITS -> {
        if (batch.targets() == null) {
          throw new GraftException(ErrorCodes.ARGUMENT,
              "this graft's loss is " + loss + ": its examples need float targets (Example.withTargets)");
        }
        yield trainStep(batch.inputs(), batch.targets(), learningRate);
      }
      case CAUSAL_LM_CROSS_ENTROPY -> trainStep(batch.inputs(), learningRate);
      default -> trainStep(batch.inputs(), batch.labels(), learningRate);
    };
  }

  /** Makes the labels tensor of a batch of {@code batch} examples (the caller closes it). */
  @FunctionalInterface
  private interface LabelsTensor {
    OnnxTensor make(int batch) throws OrtException;
  }

  private float step(Map<String, long[][]> hostInputs, float learningRate, LabelsTensor labels) {
    checkOpen();
    OrtSession session = training;
    if (session == null) {
      throw new GraftException(ErrorCodes.ARGUMENT, "this model was opened for inference only; it cannot train");
    }
    if (!Float.isFinite(learningRate) || learningRate < 0) {
      throw new GraftException(ErrorCodes.ARGUMENT, "learning rate must be finite and >= 0, got " + learningRate);
    }
    TrainStep ts = manifest.getTrain();
    Map<String, OnnxTensor> owned = hostTensors(hostInputs);
    try {
      int batch = batchSize(hostInputs);
      owned.put(ts.getLabels(), labels.make(batch));
      owned.putAll(gateTensors());
      if (seedType != null) {
        owned.put(ts.getSeed(), scalar(seedType, seed * 1_000_003L + step + 1));
      }
      stepValue.put(0, (float) (step + 1));
      learningRateValue.put(0, learningRate);
      Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
      inputs.putAll(current.asInputs);
      inputs.put(ts.getStep(), stepTensor);
      inputs.put(ts.getLearningRate(), learningRateTensor);
      float lossValue;
      try (OrtSession.Result r = session.run(inputs, Set.of(ts.getLoss()), spare.asOutputs)) {
        OnnxValue v = r.get(ts.getLoss()).orElseThrow();
        lossValue = ((OnnxTensor) v).getFloatBuffer().get(0);
      } catch (OrtException e) {
        throw ort("training step " + (step + 1) + " failed", e);
      }
      StateSet t = current;
      current = spare;
      spare = t;
      step++;
      return lossValue;
    } catch (OrtException e) {
      throw ort("cannot create the batch tensors", e);
    } finally {
      owned.values().forEach(OnnxTensor::close);
    }
  }

  /**
   * The head's output for a batch of host inputs, with the current parameters: class logits
   * {@code [batch][num_labels]} (classification, multi-label) or predictions {@code
   * [batch][targets]} (regression). A causal LM's logits come from {@link #predictSequence}.
   */
  public float[][] predict(Map<String, long[][]> hostInputs) {
    checkOpen();
    if (loss == Loss.CAUSAL_LM_CROSS_ENTROPY) {
      throw new GraftException(ErrorCodes.ARGUMENT,
          "a causal LM predicts logits per position; call predictSequence(hostInputs) for [batch][sequence][vocab]");
    }
    return infer(hostInputs, "num_labels", (fb, shape) -> {
      float[][] out = new float[(int) shape[0]][(int) shape[1]];
      for (float[] row : out) {
        fb.get(row);
      }
      return out;
    });
  }

  /** Vocabulary logits {@code [batch][sequence][vocab]} of a causal LM graft, with the current parameters. */
  public float[][][] predictSequence(Map<String, long[][]> hostInputs) {
    checkOpen();
    if (loss != Loss.CAUSAL_LM_CROSS_ENTROPY) {
      throw new GraftException(ErrorCodes.ARGUMENT,
          "this graft's loss is " + loss + ": it predicts one row per example; call predict(hostInputs)");
    }
    return infer(hostInputs, "sequence, vocab", (fb, shape) -> {
      float[][][] out = new float[(int) shape[0]][(int) shape[1]][(int) shape[2]];
      for (float[][] rows : out) {
        for (float[] row : rows) {
          fb.get(row);
        }
      }
      return out;
    });
  }

  /** Reads an inference output whose shape has been checked: [batch, {@code trailing}...]. */
  private interface OutputReader<T> {
    T read(FloatBuffer values, long[] shape);
  }

  /**
   * Runs the inference graph on a batch and reads its output, checked to be {@code [batch,
   * <trailing>]} (trailing names the dimensions after the batch, one per comma).
   */
  private <T> T infer(Map<String, long[][]> hostInputs, String trailing, OutputReader<T> reader) {
    Map<String, OnnxTensor> owned = hostTensors(hostInputs);
    try {
      owned.putAll(gateTensors());
      Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
      inputs.putAll(current.parametersOnly);
      try (OrtSession.Result r = inference.run(inputs, Set.of(manifest.getLogits()))) {
        OnnxTensor output = (OnnxTensor) r.get(manifest.getLogits()).orElseThrow();
        long[] shape = output.getInfo().getShape();
        int batch = batchSize(hostInputs);
        if (shape.length != 1 + trailing.split(",").length || shape[0] != batch) {
          throw new TensorMismatchException(
              manifest.getLogits(), "[" + batch + ", " + trailing + "]", Arrays.toString(shape), "graph output");
        }
        return reader.read(output.getFloatBuffer(), shape);
      }
    } catch (OrtException e) {
      throw ort("inference failed", e);
    } finally {
      owned.values().forEach(OnnxTensor::close);
    }
  }

  private static int batchSize(Map<String, long[][]> hostInputs) {
    return hostInputs.values().iterator().next().length;
  }

  /** Validates host inputs against the manifest and makes tensors (the caller closes them). */
  private Map<String, OnnxTensor> hostTensors(Map<String, long[][]> given) {
    Set<String> expected = new TreeSet<>();
    for (HostInput in : manifest.getInputsList()) {
      expected.add(in.getName());
    }
    if (!expected.equals(new TreeSet<>(given.keySet()))) {
      Set<String> missing = new TreeSet<>(expected);
      missing.removeAll(given.keySet());
      Set<String> extra = new TreeSet<>(given.keySet());
      extra.removeAll(expected);
      throw new GraftException(
          ErrorCodes.UNKNOWN_NAME, "host inputs must be exactly " + expected + "; missing " + missing + ", unknown " + extra);
    }
    Map<String, Long> symbols = new HashMap<>();
    Map<String, String> symbolSource = new HashMap<>();
    Map<String, OnnxTensor> out = new LinkedHashMap<>();
    try {
      for (HostInput in : manifest.getInputsList()) {
        long[][] rows = given.get(in.getName());
        int batch = rows.length;
        int seq = batch == 0 ? 0 : rows[0].length;
        for (int r = 1; r < batch; r++) {
          if (rows[r].length != seq) {
            throw new TensorMismatchException(
                in.getName(), "rectangular [batch, sequence] (pad the batch)",
                "row 0 has " + seq + " values, row " + r + " has " + rows[r].length);
          }
        }
        long[] actual = {batch, seq};
        if (batch == 0 || seq == 0) {
          throw new TensorMismatchException(in.getName(), describe(in), Arrays.toString(actual), "empty batch");
        }
        if (in.getShapeCount() != 2) {
          throw new TensorMismatchException(in.getName(), describe(in), "rank 2 " + Arrays.toString(actual));
        }
        for (int d = 0; d < 2; d++) {
          Dim dim = in.getShape(d);
          if (dim.hasSize() && dim.getSize() > 0 && dim.getSize() != actual[d]) {
            throw new TensorMismatchException(in.getName(), describe(in), Arrays.toString(actual));
          }
          if (dim.hasSymbol() && !dim.getSymbol().isEmpty()) {
            Long prior = symbols.putIfAbsent(dim.getSymbol(), actual[d]);
            if (prior != null && prior != actual[d]) {
              throw new TensorMismatchException(
                  in.getName(), describe(in) + " with " + dim.getSymbol() + " = " + prior + " (from "
                      + symbolSource.get(dim.getSymbol()) + ")",
                  Arrays.toString(actual));
            }
            symbolSource.putIfAbsent(dim.getSymbol(), in.getName());
          }
        }
        if (in.getElemType() == ElementType.INT64.onnx) {
          LongBuffer buf = directLongs(batch * seq);
          for (long[] row : rows) {
            buf.put(row);
          }
          buf.clear();
          out.put(in.getName(), OnnxTensor.createTensor(env, buf, actual));
        } else if (in.getElemType() == ElementType.INT32.onnx) {
          IntBuffer buf = directInts(batch * seq);
          for (long[] row : rows) {
            for (long x : row) {
              buf.put(Math.toIntExact(x));
            }
          }
          buf.clear();
          out.put(in.getName(), OnnxTensor.createTensor(env, buf, actual));
        } else {
          throw new TensorMismatchException(
              in.getName(), "an integer host input", ElementType.describe(in.getElemType()), "unsupported by this API");
        }
      }
      return out;
    } catch (OrtException e) {
      out.values().forEach(OnnxTensor::close);
      throw ort("cannot create host input tensors", e);
    } catch (RuntimeException e) {
      out.values().forEach(OnnxTensor::close);
      throw e;
    }
  }

  private static String describe(HostInput in) {
    StringBuilder sb = new StringBuilder(ElementType.describe(in.getElemType())).append('[');
    for (int i = 0; i < in.getShapeCount(); i++) {
      Dim d = in.getShape(i);
      sb.append(i == 0 ? "" : ", ").append(d.hasSize() ? String.valueOf(d.getSize()) : d.getSymbol());
    }
    return sb.append(']').toString();
  }

  private OnnxTensor labelTensor(long[] labels) throws OrtException {
    if (labelType == ElementType.INT32) {
      IntBuffer b = directInts(labels.length);
      for (long l : labels) {
        b.put((int) l);
      }
      return OnnxTensor.createTensor(env, b.clear(), new long[] {labels.length});
    }
    LongBuffer b = directLongs(labels.length);
    b.put(labels).clear();
    return OnnxTensor.createTensor(env, b, new long[] {labels.length});
  }

  private OnnxTensor scalar(ElementType type, long value) throws OrtException {
    return switch (type) {
      case INT64 -> OnnxTensor.createTensor(
          env, directLongs(1).put(0, value), new long[0]);
      case INT32 -> OnnxTensor.createTensor(
          env, directInts(1).put(0, (int) value), new long[0]);
      case FLOAT -> OnnxTensor.createTensor(env, directFloats(1).put(0, (float) (value & 0xFFFFFF)), new long[0]);
      default -> throw new TensorMismatchException(
          manifest.getTrain().getSeed(), "int64, int32 or float scalar", type.name());
    };
  }

  // ---------------------------------------------------------------- parameters

  @Override
  public Manifest getManifest() {
    return manifest;
  }

  /** The trainable parameters as the manifest declares them, in manifest order. */
  public List<Parameter> getParameters() {
    return parameters;
  }

  /** Number of trainable values (the sum of every trainable parameter's element count; frozen ones do not count). */
  public long getParameterCount() {
    long n = 0;
    for (int i = 0; i < sizes.length; i++) {
      n += parameters.get(i).getFrozen() ? 0 : sizes[i];
    }
    return n;
  }

  /** Steps taken since opening (or since {@link #resetOptimizer()}). */
  public long getStep() {
    return step;
  }

  /** Whether a training session is open. */
  public boolean isTrainable() {
    return training != null;
  }

  /** The shape of parameter {@code name}. */
  public long[] getParameterShape(String name) {
    return shapes[indexOf(name)].clone();
  }

  @Override
  public float[] getParameter(String name) {
    checkOpen();
    return copyOut(current.value[indexOf(name)]);
  }

  @Override
  public void setParameter(String name, float[] values) {
    checkOpen();
    int i = indexOf(name);
    copyIn(name, i, current.value[i], values);
  }

  /** All parameters by name (copies), in manifest order. */
  public Map<String, float[]> getParameterValues() {
    Map<String, float[]> out = new LinkedHashMap<>();
    for (Parameter p : parameters) {
      out.put(p.getName(), getParameter(p.getName()));
    }
    return Collections.unmodifiableMap(out);
  }

  /** The direct buffer that holds parameter {@code name} now (for tests of the zero-copy swap). */
  FloatBuffer currentBuffer(String name) {
    return current.value[indexOf(name)];
  }

  /** A copy of an AdamW moment of parameter {@code name} (first or second), as it is now. */
  float[] optimizerState(String name, boolean second) {
    return copyOut(moments(second)[indexOf(name)]);
  }

  /** Replaces an AdamW moment of parameter {@code name} (first or second) in the current set. */
  void setOptimizerState(String name, boolean second, float[] values) {
    checkOpen();
    int i = indexOf(name);
    copyIn(name, i, moments(second)[i], values);
  }

  /** The current set's first or second AdamW moments. */
  private FloatBuffer[] moments(boolean second) {
    FloatBuffer[] set = second ? current.second : current.first;
    if (set == null) {
      throw new GraftException(ErrorCodes.ARGUMENT, "this model was opened for inference only; it has no optimizer state");
    }
    return set;
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

  /** Sets the number of steps taken (the next step's bias correction uses {@code step + 1}). */
  void setStep(long value) {
    if (value < 0) {
      throw new GraftException(ErrorCodes.ARGUMENT, "step must be >= 0, got " + value);
    }
    step = value;
  }

  /**
   * Saves the training state (parameters, AdamW moments, step count) to a safetensors file,
   * replacing it atomically. Resume with {@link #loadCheckpoint(Path)}.
   */
  public void saveCheckpoint(Path file) {
    checkOpen();
    Checkpoints.save(this, file, Map.of());
  }

  /**
   * Restores the training state saved by {@link #saveCheckpoint(Path)}; the file is checked
   * against this graft (name, host, tensor names and shapes) before anything changes.
   */
  public void loadCheckpoint(Path file) {
    checkOpen();
    Checkpoints.load(this, file);
  }

  private int indexOf(String name) {
    Integer i = index.get(name);
    if (i == null) {
      throw new GraftException(
          ErrorCodes.UNKNOWN_NAME, "no parameter named '" + name + "'; parameters: " + index.keySet());
    }
    return i;
  }

  // ---------------------------------------------------------------- utilities

  private static FloatBuffer directFloats(int count) {
    return ByteBuffer.allocateDirect(count * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
  }

  private static LongBuffer directLongs(int count) {
    return ByteBuffer.allocateDirect(count * 8).order(ByteOrder.nativeOrder()).asLongBuffer();
  }

  private static IntBuffer directInts(int count) {
    return ByteBuffer.allocateDirect(count * 4).order(ByteOrder.nativeOrder()).asIntBuffer();
  }

  private static void zero(FloatBuffer b) {
    for (int i = 0; i < b.capacity(); i++) {
      b.put(i, 0f);
    }
  }

  static GraftException ort(String what, OrtException e) {
    return new GraftException(ErrorCodes.ONNX_RUNTIME, what + ": " + e.getCode() + ": " + e.getMessage(), e);
  }

  private void checkOpen() {
    if (closed) {
      throw new GraftException(ErrorCodes.CLOSED, "the adapter model is closed");
    }
  }

  private static void closeQuietly(@Nullable Object... things) {
    for (Object o : things) {
      try {
        if (o instanceof AutoCloseable c) {
          c.close();
        }
      } catch (Exception ignored) {
        // closing after a failure: the first failure is the one to report
      }
    }
  }

  @Override
  public void close() {
    if (closed) {
      return;
    }
    closed = true;
    StateSet spareSet = spare;
    closeQuietly(training, inference, current, spareSet == current ? null : spareSet, stepTensor, learningRateTensor);
    host.close();
  }
}
