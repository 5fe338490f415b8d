package dev.graft.runtime;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.HostFeed;
import dev.graft.runtime.feed.Gates;
import dev.graft.runtime.feed.UpdateMasks;
import dev.graft.runtime.feed.HostInputs;
import dev.graft.runtime.feed.PastKeyValues;
import dev.graft.runtime.feed.TaskLabels;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.export.MergedExport;
import dev.graft.runtime.export.UnmergedExport;
import dev.graft.runtime.generate.Generation;
import dev.graft.runtime.generate.GenerationOptions;
import dev.graft.runtime.generate.OrtDecoder;
import dev.graft.runtime.io.NestedRanks;
import dev.graft.runtime.io.OnnxAdapterFile;
import dev.graft.runtime.io.OnnxAdapters;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.PeftLayout;
import dev.graft.runtime.io.QuantizedAdapters;
import dev.graft.runtime.merge.AdapterDelta;
import dev.graft.runtime.session.CalibrationGraph;
import dev.graft.runtime.session.ElementType;
import dev.graft.runtime.session.Lifecycle;
import dev.graft.runtime.session.NativeStack;
import dev.graft.runtime.session.Sessions;
import dev.graft.runtime.state.Calibration;
import dev.graft.runtime.state.Checkpoints;
import dev.graft.runtime.state.ParameterState;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.runtime.train.GradientStep;
import dev.graft.runtime.train.Gradients;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.TrainStep;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * A compiled adapter on its host, open on ONNX Runtime: an inference session and (unless
 * disabled) a training-step session, both fed the host's frozen weights once.
 *
 * <p>A facade: the sessions and host weights are {@link Sessions}, the parameters with their
 * AdamW moments and step count a {@link ParameterState} (two sets of direct buffers that swap
 * roles every step, so that on CPU a step copies no parameter or optimizer state), what the graphs
 * are fed besides is in {@code feed} ({@link HostInputs}, {@link TaskLabels}, {@link Gates}), and
 * the file formats in {@code io}.
 *
 * <p>Thread-safe. Inference ({@link #predict}, {@link #predictSequence}) and calls that only read
 * the parameters (getting, saving) run concurrently with each other; a training step and every
 * call that changes the state (setting or loading parameters or a checkpoint, switching adapters,
 * truncating ranks, initializing) run alone: they wait for the calls in flight, and the others wait
 * for them, so two training steps never interleave and inference never sees half a step.
 *
 * <p>{@link #close()} waits for the calls in flight to return, then releases the native sessions
 * and tensors; it is idempotent. Every later call that runs a graph or reads or changes the state
 * fails with {@link RuntimeErrorCode#CLOSED} ({@code GRAFT-R008}); what describes the graft
 * ({@link #getManifest}, {@link #getParameters}, {@link #getParameterCount}, {@link
 * #getParameterShape}, {@link #getLoss}, {@link #isTrainable}) stays readable.
 */
public final class AdapterModel implements ParameterStore, AutoCloseable {
  private static final System.Logger LOG = System.getLogger(AdapterModel.class.getName());
  private final AdapterGraphs graphs;
  private final Manifest manifest;
  private final OrtEnvironment env;
  private final long seed;
  private final ParameterState state;
  private final Sessions sessions;
  private final TaskLabels labels;
  private final Gates gates;
  private final UpdateMasks updateMasks;
  private final Lifecycle lifecycle = new Lifecycle("the adapter model");
  private final ModelOptions options;
  private @Nullable GradientStep halves;

  private AdapterModel(AdapterGraphs graphs, ModelOptions options) {
    this.graphs = graphs;
    this.options = options;
    this.manifest = graphs.manifest();
    this.env = OrtEnvironment.getEnvironment();
    this.seed = options.seed();
    this.gates = new Gates(manifest);
    boolean train = options.training() && graphs.trainGraph() != null;
    if (options.training() && graphs.trainGraph() == null) {
      throw new GraftException(
          RuntimeErrorCode.IO,
          "adapter '" + graphs.name() + "' has no training graph (" + graphs.name() + AdapterGraphs.TRAIN_SUFFIX
              + "); open it with ModelOptions.withTraining(false) for inference only");
    }
    try {
      this.state = new ParameterState(env, manifest, train ? manifest.getTrain() : null);
    } catch (OrtException e) {
      throw Sessions.failure("cannot open the adapter's sessions", e);
    }
    try {
      this.sessions = Sessions.open(graphs, options, train);
    } catch (RuntimeException e) {
      state.close();
      throw e;
    }
    OrtSession training = sessions.training();
    this.updateMasks = new UpdateMasks(manifest, training == null ? Set.of() : training.getInputNames());
    try {
      this.labels = new TaskLabels(manifest, sessions.labelType(), graphs.name() + AdapterGraphs.TRAIN_SUFFIX);
    } catch (RuntimeException e) {
      close();
      throw e;
    }
    initialize();
  }

  /** Opens the adapter with default options (CPU, seed 42, host from the manifest). */
  public static AdapterModel open(AdapterGraphs graphs) {
    return open(graphs, ModelOptions.defaults());
  }

  /** Opens the adapter: reads the host weights, creates the sessions and initializes the parameters. */
  public static AdapterModel open(AdapterGraphs graphs, ModelOptions options) {
    return NativeStack.call("opening graft '" + graphs.name() + "'", () -> new AdapterModel(graphs, options));
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

  // ---------------------------------------------------------------- adapter folders

  /**
   * Saves the trained parameters as a Hugging Face PEFT adapter folder ({@code
   * adapter_config.json} + {@code adapter_model.safetensors}), the folder replaced as a whole.
   */
  public void saveAdapter(Path dir) {
    lifecycle.read(() -> PeftAdapters.save(state, dir));
  }

  /**
   * Saves as {@link #saveAdapter(Path)} with PEFT's keys in a transformers {@code layout}, e.g.
   * {@link PeftLayout#BERT} for a {@code BertForSequenceClassification} ({@code
   * base_model.model.bert.encoder.…}, the head {@code classifier} as is).
   */
  public void saveAdapter(Path dir, PeftLayout layout) {
    lifecycle.read(() -> PeftAdapters.save(state, dir, layout));
  }

  /**
   * Loads an adapter folder saved for this graft by Graft or by PEFT (checked against the
   * manifest, see {@link PeftAdapters}) into the parameters, its key layout found from the file;
   * returns the notes on what was ignored or converted (also logged as warnings).
   */
  public List<String> loadAdapter(Path dir) {
    return lifecycle.write(() -> PeftAdapters.load(state, dir));
  }

  /** {@link #loadAdapter(Path)} with the keys' layout given: a file in another layout is a {@code GRAFT-R040} error. */
  public List<String> loadAdapter(Path dir, PeftLayout layout) {
    return lifecycle.write(() -> PeftAdapters.load(state, dir, layout));
  }

  /** Saves named adapter {@code name} alone (its parameters and its own adapter_config.json), the folder replaced as a whole. */
  public void saveAdapter(Path dir, String name) {
    lifecycle.read(() -> PeftAdapters.saveNamed(state, dir, name));
  }

  /** Loads a folder saved for named adapter {@code name} into it (trained or frozen), checked against its config, keys and shapes. */
  public List<String> loadAdapter(Path dir, String name) {
    return lifecycle.write(() -> PeftAdapters.loadNamed(state, dir, name));
  }

  /**
   * Exports the graft as a standalone ONNX model in folder {@code dir} (replaced as a whole):
   * {@code model.onnx} and its weights in {@code model.onnx.data}, which a bare ONNX Runtime
   * session runs without Graft. Every linear-site adapter (the LoRA family, DoRA, PiSSA, DyLoRA at
   * {@link ExportOptions#dyLoraRank}, LoKr, LoHa, VeRA, IA³) is folded into its host weight; the
   * others stay as adapters with their current values, or fail with {@code GRAFT-R050} under
   * {@link ExportOptions#requireMerged}. See docs/exporting-and-serving.md.
   */
  public void exportMerged(Path dir, ExportOptions options) {
    lifecycle.read(() -> MergedExport.write(
        new MergedExport.Source(graphs, sessions.host(), state.values(), gates.active()), dir, options));
  }

  /**
   * The merged export of a merge result on this graft (see {@link
   * dev.graft.runtime.merge.MergeResult#exportMerged}): {@code override}'s site updates in place of
   * this model's, and the head parameters of {@code head} (by name) in place of its current ones.
   */
  public void exportMerged(Path dir, ExportOptions options, MergedExport.MergedUpdates override, Map<String, float[]> head) {
    lifecycle.read(() -> {
      Map<String, float[]> values = new java.util.LinkedHashMap<>(state.values());
      head.forEach((name, v) -> {
        float[] had = values.get(name);
        if (had == null || had.length != v.length) {
          throw new TensorMismatchException(name, had == null ? "a parameter" : had.length + " values",
              v.length + " values", "the merged head");
        }
        values.put(name, v.clone());
      });
      MergedExport.write(new MergedExport.Source(graphs, sessions.host(), values, gates.active()), dir, options, override);
    });
  }

  /**
   * Exports the graft unmerged in folder {@code dir} (replaced as a whole): the host plus the
   * adapter graph, {@code model.onnx} and {@code model.onnx.data}, every adapter parameter a named
   * graph input (its manifest {@code export_name}, e.g. {@code …query.lora_A.weight}, the rank the
   * symbolic dim {@code lora_r}) whose default makes the graph the plain host when nothing is fed
   * (see docs/exporting-and-serving.md); ONNX Runtime's {@code OrtLoraAdapter} feeds them.
   */
  public void exportUnmerged(Path dir, ExportOptions options) {
    lifecycle.read(() -> UnmergedExport.write(
        new MergedExport.Source(graphs, sessions.host(), state.values(), gates.active()), dir, options));
  }

  /**
   * The weight update of every linear site of this graft at the current parameter values, as an
   * input of a merge named {@code name} (see {@link dev.graft.runtime.merge.Merge} and
   * docs/merging.md): the update graph's {@code A·B} per site and the head. Load the adapter,
   * folder or checkpoint to merge first; a graft with an adapter that has no {@code ΔW} form is
   * {@code GRAFT-R131}.
   */
  public AdapterDelta delta(String name) {
    return lifecycle.read(() -> AdapterDelta.of(name,
        new MergedExport.Source(graphs, sessions.host(), state.values(), gates.active())));
  }

  /**
   * Saves the adapter with its nested-rank adapters (DyLoRA) at rank {@code rank} (1 up to their
   * maximum) as a plain PEFT LoRA folder of that rank ({@code r = rank}, {@code lora_alpha} the
   * DyLoRA alpha); a Graft LoRA of that rank and alpha on the same sites, or PEFT, loads it. Every
   * adapter of the graft must have nested ranks.
   */
  public void saveAdapter(Path dir, int rank) {
    lifecycle.read(() -> NestedRanks.save(state, dir, rank));
  }

  /**
   * Makes this model's nested-rank adapters (DyLoRA) act at rank {@code rank} (1 up to their
   * maximum) from now on: A's columns and B's rows from {@code rank} on are zeroed and B's first
   * rows multiplied by {@code maxRank / rank}, so the scaling becomes {@code alpha / rank}. It
   * replaces the values: save the adapter first to go back. At the maximum rank nothing changes.
   */
  public void truncateRank(int rank) {
    lifecycle.write(() -> NestedRanks.truncate(state, rank));
  }

  /**
   * Saves the adapter parameters as an ONNX Runtime {@code .onnx_adapter} file (float32), each
   * under the name of its graph input in the unmerged export ({@link #exportUnmerged}; the head is
   * fixed there and not saved), the file replaced atomically; serve it with {@link
   * dev.graft.runtime.serve.OrtAdapterSession}.
   */
  public void saveOnnxAdapter(Path file) {
    saveOnnxAdapter(file, OnnxAdapterFile.DataType.FLOAT);
  }

  /** Saves the parameters as {@link #saveOnnxAdapter(Path)} does, as elements of {@code type} (rounded to nearest, ties to even). */
  public void saveOnnxAdapter(Path file, OnnxAdapterFile.DataType type) {
    lifecycle.read(() -> OnnxAdapters.save(state, file, type));
  }

  /**
   * Loads an {@code .onnx_adapter} file into the adapter parameters (the head is left as it is): it
   * must hold exactly this graft's adapter parameters under their export names and in their
   * shapes, with finite values; nothing changes unless it does. Float16 and bfloat16 values are
   * widened to float32.
   *
   * @return notes on what was converted (empty for a float32 file)
   */
  public List<String> loadOnnxAdapter(Path file) {
    return lifecycle.write(() -> OnnxAdapters.load(state, file));
  }

  /**
   * Saves a quantized adapter's parameters bit-packed ({@link QuantizedAdapters}: b bits per
   * quantized weight with the mean and deviation its forward pass reads, the rest float32) to
   * {@code file}, the file replaced atomically.
   *
   * @throws GraftException {@code GRAFT-R300} when the graft quantizes no parameter
   */
  public void saveQuantizedAdapter(Path file) {
    lifecycle.read(() -> QuantizedAdapters.save(state, file));
  }

  /**
   * Loads a bit-packed file saved by {@link #saveQuantizedAdapter} for this graft into the
   * parameters, restoring each tensor's mean and deviation exactly: the model then predicts what
   * the saving model predicted, bit for bit. Nothing changes unless the whole file is valid
   * ({@code GRAFT-R301} names what is wrong, {@code GRAFT-R303} codes float32 cannot reproduce).
   */
  public void loadQuantizedAdapter(Path file) {
    lifecycle.write(() -> QuantizedAdapters.load(state, file));
  }

  // ---------------------------------------------------------------- named adapters

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
    lifecycle.write(() -> gates.activate(names));
  }

  /** Switches on every named adapter (the state a model opens in). */
  public void activateAll() {
    lifecycle.write(gates::activateAll);
  }

  /** The named adapters switched on, sorted. */
  public Set<String> activeAdapters() {
    return lifecycle.read(gates::active);
  }

  // ---------------------------------------------------------------- training and inference

  /** The loss the graft trains with (softmax cross-entropy for manifests that predate tasks). */
  public Loss getLoss() {
    return labels.loss();
  }

  /**
   * Runs one training step of a classification graft: forward, backward and the AdamW update, on
   * a batch of host inputs (each of the element type and shape the manifest declares, e.g. float
   * pixels {@code [batch, 3, 224, 224]}; checked as {@link HostInputs#tensors} says) and class
   * labels ({@code [batch]}, each in {@code [0, num_labels)} or the ignore index). The learning
   * rate must be in {@code [0, 1]}. Every training step throws {@link NonFiniteStepException},
   * committing nothing, when its loss or updated state is not finite.
   *
   * @return the batch loss before the update
   */
  public float trainStep(HostFeed hostInputs, long[] labels, float learningRate) {
    return step(hostInputs, learningRate, this.labels.classes(labels));
  }

  /** {@link #trainStep(HostFeed, long[], float)} on token rows ({@code [batch, sequence]} per host input name). */
  public float trainStep(Map<String, long[][]> hostInputs, long[] labels, float learningRate) {
    return trainStep(HostFeed.ofRows(hostInputs), labels, learningRate);
  }

  /**
   * Runs one training step of a regression or multi-label graft on float targets {@code
   * [batch][outputs]} (regression: any finite values; multi-label: values in [0, 1]).
   *
   * @return the batch loss before the update
   */
  public float trainStep(HostFeed hostInputs, float[][] targets, float learningRate) {
    return step(hostInputs, learningRate, labels.targets(targets));
  }

  /** {@link #trainStep(HostFeed, float[][], float)} on token rows ({@code [batch, sequence]} per host input name). */
  public float trainStep(Map<String, long[][]> hostInputs, float[][] targets, float learningRate) {
    return trainStep(HostFeed.ofRows(hostInputs), targets, learningRate);
  }

  /**
   * Runs one training step of a causal LM graft, the labels being the batch's {@code input_ids}
   * (each position learns the next token; positions whose next token is padding are left out).
   *
   * @return the batch loss before the update
   */
  public float trainStep(HostFeed hostInputs, float learningRate) {
    return step(hostInputs, learningRate, labels.tokens(hostInputs));
  }

  /** {@link #trainStep(HostFeed, float)} on token rows ({@code [batch, sequence]} per host input name). */
  public float trainStep(Map<String, long[][]> hostInputs, float learningRate) {
    return trainStep(HostFeed.ofRows(hostInputs), learningRate);
  }

  /**
   * Runs one training step with token labels {@code [batch, sequence]} (same shape as {@code
   * input_ids}): of a causal LM graft, position t learns {@code labels[t+1]}, labels equal to the
   * ignore index and positions whose next token has attention mask 0 are left out; of a
   * token-classification graft, token t learns class {@code labels[t]}, tokens labelled with the
   * ignore index or with attention mask 0 are left out.
   *
   * @return the batch loss before the update
   */
  public float trainStep(HostFeed hostInputs, long[][] labels, float learningRate) {
    return step(hostInputs, learningRate, this.labels.tokens(hostInputs, labels));
  }

  /** {@link #trainStep(HostFeed, long[][], float)} on token rows ({@code [batch, sequence]} per host input name). */
  public float trainStep(Map<String, long[][]> hostInputs, long[][] labels, float learningRate) {
    return trainStep(HostFeed.ofRows(hostInputs), labels, learningRate);
  }

  /**
   * Runs one training step on a batch, with the labels its task needs: class labels, float
   * targets, or (causal LM) none — the labels are the batch's {@code input_ids}.
   */
  public float trainStep(Batch batch, float learningRate) {
    return step(batch.feed(), learningRate, labels.of(batch));
  }

  private float step(HostFeed hostInputs, float learningRate, TaskLabels.Labels batchLabels) {
    return lifecycle.write(() -> runStep(hostInputs, learningRate, batchLabels));
  }

  private float runStep(HostFeed hostInputs, float learningRate, TaskLabels.Labels batchLabels) {
    OrtSession session = sessions.training();
    if (session == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "this model was opened for inference only; it cannot train");
    }
    ParameterState.checkLearningRate(learningRate);
    requireCalibrated();
    Map<String, OnnxTensor> owned = new HashMap<>();
    try {
      batchTensors(hostInputs, batchLabels, owned);
      Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
      inputs.putAll(state.trainInputs(learningRate));
      try (OrtSession.Result r = session.run(inputs, state.trainResults(), state.trainOutputs())) {
        return state.commit(r);
      } catch (OrtException e) {
        throw Sessions.failure("training step " + (state.step() + 1) + " failed", e);
      }
    } catch (OrtException e) {
      throw Sessions.failure("cannot create the batch tensors", e);
    } finally {
      owned.values().forEach(OnnxTensor::close);
    }
  }

  /**
   * Puts the tensors a training step is fed besides the state into {@code owned} (the caller closes
   * them, also when this throws): host inputs, an empty key/value past, labels, gates and the
   * step's dropout seed.
   */
  private void batchTensors(HostFeed hostInputs, TaskLabels.Labels batchLabels,
      Map<String, OnnxTensor> owned) throws OrtException {
    TrainStep ts = manifest.getTrain();
    owned.putAll(HostInputs.tensors(env, manifest, hostInputs));
    owned.putAll(PastKeyValues.empty(env, manifest, hostInputs.batchSize()));
    owned.put(ts.getLabels(), batchLabels.make(env, hostInputs.batchSize()));
    owned.putAll(gates.tensors(env));
    owned.putAll(updateMasks.tensors(env));
    ElementType seedType = sessions.seedType();
    if (seedType != null) {
      owned.put(ts.getSeed(), HostInputs.seed(env, ts.getSeed(), seedType, seed * 1_000_003L + state.step() + 1));
    }
  }

  // ---------------------------------------------------------------- calibration

  /**
   * Calibrates the parameters that start from the data (LoRA {@code init = "corda_ipm"} or {@code
   * "corda_kpm"}: CorDA): runs {@code batches} through the inference graph with the host's function
   * at those sites (their factors zero, so each adds nothing), collects each site's input covariance
   * in float64 (one sample per example, padding left out), then sets A, B and their frozen copies
   * A0, B0 from the decomposition of the host weight times the covariance, so that the output
   * starts as the host's, and restarts the optimizer (moments and step count). Must run before training such a graft ({@code GRAFT-R340} otherwise);
   * running it again recomputes them. Progress goes to the {@code System.Logger} of this class
   * (INFO, one line per tenth of the batches). No batches, or inputs that give no usable
   * covariance, are {@code GRAFT-R341}.
   *
   * @return the covariances collected, by site input (the tensor each parameter's manifest entry names)
   */
  public Calibration calibrate(List<Batch> batches) {
    SortedSet<String> inputs = Calibration.inputs(manifest);
    if (inputs.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "graft '" + graphs.name() + "' has no parameter that"
          + " calibration sets (LoRA init corda_ipm or corda_kpm)");
    }
    if (batches.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, "calibration of '" + graphs.name()
          + "' needs at least one batch, got none");
    }
    return lifecycle.write(() -> runCalibration(batches, inputs));
  }

  private Calibration runCalibration(List<Batch> batches, SortedSet<String> inputs) {
    for (Parameter p : manifest.getParametersList()) {
      if (Calibration.calibrated(p)) {
        state.setParameter(p.getName(), new float[state.getParameter(p.getName()).length]);
      }
    }
    Calibration.Accumulator sums = new Calibration.Accumulator();
    passWithOutputs("calibration", "the covariance", System.Logger.Level.INFO, batches, inputs, (i, input, t, mask) -> {
      boolean isDouble = t.getInfo().type == ai.onnxruntime.OnnxJavaType.DOUBLE;
      sums.add(input, t.getInfo().getShape(), isDouble ? null : t.getFloatBuffer(),
          isDouble ? t.getDoubleBuffer() : null, mask, "calibration batch " + (i + 1));
    });
    Calibration result = sums.finish(inputs);
    result.parameterValues(manifest, sessions.host()).forEach(state::setParameter);
    state.resetOptimizer();
    return result;
  }

  /** Reads one batch's value of one extra output of {@link #passWithOutputs}. */
  private interface OutputConsumer {
    void accept(int batch, String tensor, OnnxTensor value, long @Nullable [][] mask);
  }

  /**
   * Runs {@code batches} through the inference graph with {@code tensors} made outputs as well
   * ({@link CalibrationGraph}), with the current parameters, and hands each batch's value of each
   * tensor to {@code consumer} with the batch's attention mask (null where the host has none).
   * {@code pass} names the pass in the graph's name, errors and progress lines (logged at {@code
   * level}, one per tenth of the batches); {@code purpose} what the tensors are read for.
   */
  private void passWithOutputs(String pass, String purpose, System.Logger.Level level, List<Batch> batches,
      SortedSet<String> tensors, OutputConsumer consumer) {
    String source = graphs.name() + "." + pass + ".onnx";
    byte[] graph = CalibrationGraph.withOutputs(source, graphs.inferenceGraph(), tensors, purpose);
    String mask = manifest.getInputsList().stream().filter(HostInput::getMask).map(HostInput::getName)
        .findFirst().orElse("");
    try (Sessions.Extra extra = Sessions.openGraphs(graphs, options, List.of(source), List.of(graph))) {
      OrtSession session = extra.sessions().get(0);
      for (int i = 0; i < batches.size(); i++) {
        HostFeed hostInputs = batches.get(i).feed();
        Map<String, OnnxTensor> owned = HostInputs.tensors(env, manifest, hostInputs);
        try {
          long[][] maskRows = mask.isEmpty() ? null : hostInputs.get(mask).rows();
          owned.putAll(PastKeyValues.empty(env, manifest, hostInputs.batchSize()));
          owned.putAll(gates.tensors(env));
          Map<String, OnnxTensorLike> feed = new HashMap<>(owned);
          feed.putAll(state.inferenceInputs());
          try (OrtSession.Result r = session.run(feed, tensors)) {
            for (String tensor : tensors) {
              consumer.accept(i, tensor, (OnnxTensor) r.get(tensor).orElseThrow(), maskRows);
            }
          }
        } catch (OrtException e) {
          throw Sessions.failure(pass + " batch " + (i + 1) + " failed", e);
        } finally {
          owned.values().forEach(OnnxTensor::close);
        }
        if ((i + 1) % Math.max(1, batches.size() / 10) == 0 || i + 1 == batches.size()) {
          LOG.log(level, pass + " of " + graphs.name() + ": batch " + (i + 1) + "/" + batches.size());
        }
      }
    }
  }

  // ---------------------------------------------------------------- site features

  /**
   * Each example's features at inner tensors of the inference graph, with the current parameters:
   * for each of {@code tensors} (a value {@code [batch, width]} or {@code [batch, sequence, width]},
   * e.g. a site input that manifest parameters record as {@code site_input}: what SEMA's
   * representation descriptors read), one row {@code [width]} per example of {@code batches}, in
   * order: the mean over the positions the attention mask keeps (all positions where the host has
   * no mask), summed in float64. Changes nothing.
   *
   * @throws GraftException {@code GRAFT-R007} for no tensors or no batches, {@code GRAFT-R353} for a
   *     value that is not finite, of another rank or width than the first batch's, or an example
   *     whose mask keeps no position
   * @throws FormatException when no node of the inference graph produces one of {@code tensors}
   */
  public SortedMap<String, float[][]> siteFeatures(List<Batch> batches, SortedSet<String> tensors) {
    if (tensors.isEmpty() || batches.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "site features of '" + graphs.name()
          + "' need at least one tensor and one batch, got " + tensors.size() + " tensors and " + batches.size()
          + " batches");
    }
    return lifecycle.read(() -> {
      SortedMap<String, List<float[]>> rows = new TreeMap<>();
      SortedMap<String, Integer> widths = new TreeMap<>();
      passWithOutputs("features", "the site features", System.Logger.Level.DEBUG, batches, tensors, (i, tensor, t, mask) -> {
        long[] shape = t.getInfo().getShape();
        String where = "'" + tensor + "' in features batch " + (i + 1);
        int batch = HostInputs.batchSize(batches.get(i).inputs());
        if (shape.length < 2 || shape.length > 3 || shape[0] != batch
            || t.getInfo().type != ai.onnxruntime.OnnxJavaType.FLOAT && t.getInfo().type != ai.onnxruntime.OnnxJavaType.DOUBLE) {
          throw new GraftException(RuntimeErrorCode.SITE_FEATURES, where + " has shape " + Arrays.toString(shape)
              + " of " + t.getInfo().type + "; expected float values [" + batch + ", width] or [" + batch
              + ", sequence, width]");
        }
        int width = (int) shape[shape.length - 1];
        Integer known = widths.putIfAbsent(tensor, width);
        if (known != null && known != width) {
          throw new GraftException(RuntimeErrorCode.SITE_FEATURES, where + " has width " + width + ", the first batch "
              + known);
        }
        int positions = shape.length == 3 ? (int) shape[1] : 1;
        boolean masked = mask != null && shape.length == 3 && mask.length == batch && mask[0].length == positions;
        FloatBuffer floats = t.getInfo().type == ai.onnxruntime.OnnxJavaType.FLOAT ? t.getFloatBuffer() : null;
        java.nio.DoubleBuffer doubles = floats == null ? t.getDoubleBuffer() : null;
        List<float[]> out = rows.computeIfAbsent(tensor, k -> new java.util.ArrayList<>());
        double[] sum = new double[width];
        for (int b = 0; b < batch; b++) {
          Arrays.fill(sum, 0);
          int kept = 0;
          for (int p = 0; p < positions; p++) {
            if (masked && mask[b][p] == 0) {
              continue;
            }
            kept++;
            int at = (b * positions + p) * width;
            for (int j = 0; j < width; j++) {
              double x = floats != null ? floats.get(at + j) : doubles.get(at + j);
              if (!Double.isFinite(x)) {
                throw new GraftException(RuntimeErrorCode.SITE_FEATURES, where + " holds " + x + " in example " + b
                    + " (position " + p + ", feature " + j + ")");
              }
              sum[j] += x;
            }
          }
          if (kept == 0) {
            throw new GraftException(RuntimeErrorCode.SITE_FEATURES, "example " + b + " of features batch " + (i + 1)
                + " has no position its attention mask keeps, so " + tensor + " has no mean");
          }
          float[] row = new float[width];
          for (int j = 0; j < width; j++) {
            row[j] = (float) (sum[j] / kept);
          }
          out.add(row);
        }
      });
      SortedMap<String, float[][]> result = new TreeMap<>();
      rows.forEach((k, v) -> result.put(k, v.toArray(float[][]::new)));
      return result;
    });
  }

  /** A graft with calibrated parameters trains only once they are set ({@code GRAFT-R340}). */
  private void requireCalibrated() {
    if (Calibration.inputs(manifest).isEmpty()) {
      return;
    }
    List<String> missing = Calibration.uncalibrated(state);
    if (!missing.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.CALIBRATION_REQUIRED, "graft '" + graphs.name() + "' starts its"
          + " adapters from calibration, but " + missing.size() + " of its parameters are still zero (" + missing.get(0)
          + (missing.size() > 1 ? ", …" : "") + "); call calibrate(batches) on some training data before training");
    }
  }

  // ---------------------------------------------------------------- data-parallel training

  /**
   * The first half of a training step, for data-parallel training: the gradient of the batch's
   * mean loss with respect to every trained parameter, at the current parameters, without changing
   * anything (the dropout seed is the next training step's, as {@link #trainStep(Batch, float)}
   * draws it). Replicas average these ({@link Gradients#average}, or an all-reduce of {@link
   * Gradients#weighted()}) and each applies the average with {@link #applyGradients}. The graft must
   * be compiled with {@code GraphVariant.GRADIENT} ({@code GRAFT-R160} otherwise); the gradient and
   * apply graphs are opened on first use, on a second copy of the host weights.
   *
   * @return the batch's loss, its rows and the gradient laid out as {@link #getParameterVector()}
   */
  public Gradients computeGradients(Batch batch) {
    TaskLabels.Labels batchLabels = labels.of(batch);
    return lifecycle.write(() -> {
      GradientStep step = halves();
      requireCalibrated();
      Map<String, OnnxTensor> owned = new HashMap<>();
      try {
        batchTensors(batch.feed(), batchLabels, owned);
        Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
        inputs.putAll(state.inferenceInputs());
        return step.gradients(inputs, batch.feed().batchSize());
      } catch (OrtException e) {
        throw Sessions.failure("cannot create the batch tensors", e);
      } finally {
        owned.values().forEach(OnnxTensor::close);
      }
    });
  }

  /**
   * The second half of a training step: applies {@code gradients} (laid out as {@link
   * #getParameterVector()}, e.g. the average over replicas) with the training step's AdamW update
   * at {@code learningRate}, and advances the step count. Like a training step it commits nothing
   * when the update is not finite ({@link NonFiniteStepException}, with the gradients' loss).
   */
  public void applyGradients(Gradients gradients, float learningRate) {
    lifecycle.write(() -> {
      requireTraining();
      halves().apply(state, gradients, learningRate, env);
      return null;
    });
  }

  /**
   * The trained (not frozen) parameters one after the other in manifest order, each row-major: the
   * layout of {@link Gradients#values()}, and what replicas average under K-step averaging.
   */
  public float[] getParameterVector() {
    return lifecycle.read(() -> {
      float[] out = new float[Math.toIntExact(state.parameterCount())];
      int at = 0;
      for (Parameter p : state.parameters()) {
        if (!p.getFrozen()) {
          float[] v = state.getParameter(p.getName());
          System.arraycopy(v, 0, out, at, v.length);
          at += v.length;
        }
      }
      return out;
    });
  }

  /** Sets the trained parameters from a vector laid out as {@link #getParameterVector()} (moments and step unchanged). */
  public void setParameterVector(float[] values) {
    lifecycle.write(() -> {
      if (values.length != state.parameterCount()) {
        throw new TensorMismatchException("parameter vector",
            state.parameterCount() + " values (the trained parameters' elements)", values.length + " values");
      }
      int at = 0;
      for (Parameter p : state.parameters()) {
        if (!p.getFrozen()) {
          int n = state.getParameter(p.getName()).length;
          state.setParameter(p.getName(), Arrays.copyOfRange(values, at, at + n));
          at += n;
        }
      }
      return null;
    });
  }

  private void requireTraining() {
    if (sessions.training() == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "this model was opened for inference only; it cannot train");
    }
  }

  private GradientStep halves() {
    requireTraining();
    if (halves == null) {
      halves = GradientStep.open(graphs, options);
    }
    return halves;
  }

  /**
   * The head's output for a batch of host inputs, with the current parameters: class logits
   * {@code [batch][num_labels]} (classification, multi-label) or predictions {@code
   * [batch][targets]} (regression). A causal LM's logits come from {@link #predictSequence}.
   */
  public float[][] predict(HostFeed hostInputs) {
    labels.requirePrediction(false);
    return infer(hostInputs, manifest.getLogits(), "num_labels", AdapterModel::rows);
  }

  /** {@link #predict(HostFeed)} of token rows ({@code [batch, sequence]} per host input name). */
  public float[][] predict(Map<String, long[][]> hostInputs) {
    return predict(HostFeed.ofRows(hostInputs));
  }

  /**
   * The graft's embedding of a batch of host inputs, with the current parameters: the pooled
   * representation its head reads ({@code [batch][embedding_size]}, the adapted host's sentence
   * embedding before the head), read from the inference graph {@link #predict} runs, in a run of its
   * own (a caller that wants both runs the graph twice). Only tasks with a pooled head
   * (classification, multi-label, regression) have one.
   *
   * @throws GraftException {@code GRAFT-R007} for a graft without a pooled head (causal LM, token
   *     classification) or one compiled before embeddings were recorded
   */
  public float[][] embed(HostFeed hostInputs) {
    String output = manifest.getTask().getEmbeddingOutput();
    if (output.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "graft '" + manifest.getName() + "' (loss "
          + manifest.getTask().getLoss() + ") has no embedding output: expected a task with a pooled head"
          + " (classification, multi-label, regression) compiled by this Graft, given one whose manifest names none");
    }
    float[][] out = infer(hostInputs, output, "embedding_size", AdapterModel::rows);
    if (out.length > 0 && out[0].length != manifest.getTask().getEmbeddingSize()) {
      throw new TensorMismatchException(output, "[" + out.length + ", " + manifest.getTask().getEmbeddingSize()
          + "] (manifest)", "[" + out.length + ", " + out[0].length + "]", "graph output");
    }
    return out;
  }

  /** {@link #embed(HostFeed)} of token rows ({@code [batch, sequence]} per host input name). */
  public float[][] embed(Map<String, long[][]> hostInputs) {
    return embed(HostFeed.ofRows(hostInputs));
  }

  private static float[][] rows(FloatBuffer values, long[] shape) {
    float[][] out = new float[(int) shape[0]][(int) shape[1]];
    for (float[] row : out) {
      values.get(row);
    }
    return out;
  }

  /**
   * Logits per position, with the current parameters: vocabulary logits {@code
   * [batch][sequence][vocab]} of a causal LM graft, class logits {@code [batch][sequence][num_labels]}
   * of a token-classification graft.
   */
  public float[][][] predictSequence(Map<String, long[][]> hostInputs) {
    return predictSequence(HostFeed.ofRows(hostInputs));
  }

  /** {@link #predictSequence(Map)} of host inputs of any type the manifest declares. */
  public float[][][] predictSequence(HostFeed hostInputs) {
    labels.requirePrediction(true);
    return infer(hostInputs, manifest.getLogits(), "sequence, vocab", (fb, shape) -> {
      float[][][] out = new float[(int) shape[0]][(int) shape[1]][(int) shape[2]];
      for (float[][] rows : out) {
        for (float[] row : rows) {
          fb.get(row);
        }
      }
      return out;
    });
  }

  /**
   * New tokens after each prompt of a causal LM graft, with its active adapters: at most {@code
   * maxNewTokens} per row (fewer where a row reached one of the options' stop tokens, kept as its
   * last), chosen as the options say (greedy, or seeded sampling with temperature, top-k, top-p).
   * Prompts may differ in length: no row is padded, each sees only its own tokens at its own
   * positions, so its tokens are those it would get alone ({@link Generation#run}: the batch runs in
   * lockstep from the shortest prompt's length; with sampling, row r draws from seed + r). Where the host has a key/value cache ({@code
   * past_key_values.*} inputs, {@code present.*} outputs) each step runs only the new token on the
   * cache; otherwise each step re-runs the whole prefix. Prompt plus new tokens must fit the host's
   * positions ({@code GRAFT-R100} states the limit).
   */
  public long[][] generate(long[][] prompts, int maxNewTokens, GenerationOptions options) {
    return generate(prompts, maxNewTokens, options, (length, logits) -> {});
  }

  /**
   * {@link #generate(long[][], int, GenerationOptions)}, telling {@code listener} the logits of
   * every step (each row's last position) before the tokens are chosen from them.
   */
  public long[][] generate(long[][] prompts, int maxNewTokens, GenerationOptions options,
      Generation.StepListener listener) {
    labels.requirePrediction(true);
    return lifecycle.read(() -> {
      Map<String, OnnxTensor> gateInputs;
      try {
        gateInputs = gates.tensors(env);
      } catch (OrtException e) {
        throw Sessions.failure("cannot create gate tensors", e);
      }
      Map<String, OnnxTensorLike> fixed = new HashMap<>(gateInputs);
      fixed.putAll(state.inferenceInputs());
      try (OrtDecoder decoder = new OrtDecoder(env, sessions.inference(), manifest, fixed, options.pastKeyValues())) {
        return Generation.run(decoder, prompts, maxNewTokens, options, maxSequence(), listener);
      } finally {
        gateInputs.values().forEach(OnnxTensor::close);
      }
    });
  }

  /** Reads an inference output whose shape has been checked: [batch, {@code trailing}...]. */
  private interface OutputReader<T> {
    T read(FloatBuffer values, long[] shape);
  }

  /**
   * Runs the inference graph on a batch and reads its output {@code name}, checked to be {@code
   * [batch, <trailing>]} (trailing names the dimensions after the batch, one per comma).
   */
  private <T> T infer(HostFeed hostInputs, String name, String trailing, OutputReader<T> reader) {
    return lifecycle.read(() -> runInference(hostInputs, name, trailing, reader));
  }

  private <T> T runInference(HostFeed hostInputs, String name, String trailing,
      OutputReader<T> reader) {
    Map<String, OnnxTensor> owned = HostInputs.tensors(env, manifest, hostInputs);
    try {
      owned.putAll(PastKeyValues.empty(env, manifest, hostInputs.batchSize()));
      owned.putAll(gates.tensors(env));
      Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
      inputs.putAll(state.inferenceInputs());
      try (OrtSession.Result r = sessions.inference().run(inputs, Set.of(name))) {
        OnnxTensor output = (OnnxTensor) r.get(name).orElseThrow();
        long[] shape = output.getInfo().getShape();
        int batch = hostInputs.batchSize();
        if (shape.length != 1 + trailing.split(",").length || shape[0] != batch) {
          throw new TensorMismatchException(
              name, "[" + batch + ", " + trailing + "]", Arrays.toString(shape), "graph output");
        }
        return reader.read(output.getFloatBuffer(), shape);
      }
    } catch (OrtException e) {
      throw Sessions.failure("inference failed", e);
    } finally {
      owned.values().forEach(OnnxTensor::close);
    }
  }

  // ---------------------------------------------------------------- parameters and state

  /**
   * The most tokens one sequence may hold: the host's position table's rows (the inputs'
   * {@code max_sequence}, the same limit the input checks use), 0 where the host has none.
   */
  private long maxSequence() {
    return manifest.getInputsList().stream().mapToLong(HostInput::getMaxSequence).filter(v -> v > 0).min().orElse(0);
  }

  @Override
  public Manifest getManifest() {
    return manifest;
  }

  /** The trainable parameters as the manifest declares them, in manifest order. */
  public List<Parameter> getParameters() {
    return state.parameters();
  }

  /** Number of trainable values (the sum of every trainable parameter's element count; frozen ones do not count). */
  public long getParameterCount() {
    return state.parameterCount();
  }

  /** Steps taken since opening (or since {@link #resetOptimizer()}). */
  public long getStep() {
    return lifecycle.read(state::step);
  }

  /** Whether a training session is open. */
  public boolean isTrainable() {
    return sessions.training() != null;
  }

  /** The shape of parameter {@code name}. */
  public long[] getParameterShape(String name) {
    return state.shape(name);
  }

  @Override
  public float[] getParameter(String name) {
    return lifecycle.read(() -> state.getParameter(name));
  }

  @Override
  public void setParameter(String name, float[] values) {
    lifecycle.write(() -> state.setParameter(name, values));
  }

  /** All parameters by name (copies), in manifest order. */
  public Map<String, float[]> getParameterValues() {
    return lifecycle.read(state::values);
  }

  /** The direct buffer that holds parameter {@code name} now (for tests of the zero-copy swap). */
  FloatBuffer currentBuffer(String name) {
    return lifecycle.read(() -> state.currentBuffer(name));
  }

  /** A copy of an AdamW moment of parameter {@code name} (first or second), as it is now. */
  float[] optimizerState(String name, boolean second) {
    return lifecycle.read(() -> state.moment(name, second));
  }

  /**
   * The parameters whose training step takes an update mask (sparse fine-tuning), in manifest
   * order; empty for a graft without them or a model opened for inference only.
   */
  public Set<String> getUpdateMaskParameters() {
    return lifecycle.read(updateMasks::parameters);
  }

  /**
   * Restricts the training step's changes to parameter {@code name} to the entries where {@code
   * mask} (row-major) is true; the others, and their optimizer moments, are kept. All true at first.
   *
   * @throws GraftException (GRAFT-R007) for a parameter without an update mask or a mask of another size
   */
  public void setUpdateMask(String name, boolean[] mask) {
    lifecycle.write(() -> updateMasks.set(name, mask));
  }

  /** A copy of parameter {@code name}'s update mask. */
  public boolean[] getUpdateMask(String name) {
    return lifecycle.read(() -> updateMasks.get(name));
  }

  /** Sets every parameter to its initial value (seeded) and the optimizer state and step count to zero. */
  public void initialize() {
    lifecycle.write(() -> state.initialize(seed, sessions.host()));
  }

  /** Zeroes the AdamW moments of both buffer sets and restarts the step count (bias correction) at 1. */
  public void resetOptimizer() {
    lifecycle.write(state::resetOptimizer);
  }

  /**
   * Saves the training state (parameters, AdamW moments, step count) to a safetensors file,
   * replacing it atomically. Resume with {@link #loadCheckpoint(Path)}.
   */
  public void saveCheckpoint(Path file) {
    saveCheckpoint(file, Map.of());
  }

  /** Saves the training state as {@link #saveCheckpoint(Path)} does, with {@code metadata} added to the file's. */
  public void saveCheckpoint(Path file, Map<String, String> metadata) {
    lifecycle.read(() -> Checkpoints.save(state, file, metadata));
  }

  /**
   * Restores the training state saved by {@link #saveCheckpoint(Path)}; the file is checked
   * against this graft (name, host, tensor names and shapes) before anything changes.
   *
   * @return the checkpoint's metadata
   */
  public Map<String, String> loadCheckpoint(Path file) {
    return lifecycle.write(() -> Checkpoints.load(state, file));
  }

  /** Waits for the calls in flight, then closes the sessions and the parameter state; closing again does nothing. */
  @Override
  public void close() {
    lifecycle.close(() -> {
      if (halves != null) {
        halves.close();
      }
      sessions.close();
      state.close();
    });
  }
}
