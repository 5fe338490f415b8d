package dev.graft.runtime;

import java.util.Locale;

/**
 * The catalog of Graft's run-time errors, the counterpart of the compiler's catalog of
 * compile-time errors. Codes are stable ({@code GRAFT-Rnnn}, the compiler's are
 * {@code GRAFTnnn}); messages may improve. Every {@link GraftException} carries one; {@code
 * spec/README.md} lists them under "Run-time errors".
 */
public enum RuntimeErrorCode {
  /** ONNX Runtime failed (session creation or run); the cause is the OrtException. */
  ONNX_RUNTIME(1, "ONNX Runtime failed to open a session or run a graph (its error is the cause)"),
  /** A tensor's shape or element type is not what is expected. */
  TENSOR_MISMATCH(2, "a tensor's shape or element type is not what the graph, file or manifest expects"
      + " (names the tensor, what was expected and what was given)"),
  /** A file or resource is malformed or does not match the manifest. */
  FORMAT(3, "a file or resource (ONNX graph, manifest, safetensors, `adapter_config.json`, checkpoint) is malformed"
      + " or does not match the graft"),
  /** An execution provider is not available. */
  EXECUTION_PROVIDER(4, "an execution provider (CUDA) was asked for but the ONNX Runtime on the classpath cannot use it"),
  /** A file or resource could not be read or written. */
  IO(5, "a file or resource cannot be read or written"),
  /** A name (parameter, input) is unknown. */
  UNKNOWN_NAME(6, "a name (parameter, host input, graph input) is unknown"),
  /** An argument is out of range (batch size, learning rate, labels …). */
  ARGUMENT(7, "an argument is out of range or does not fit the graft (batch size, learning rate, rank, a call for another task)"),
  /** The model was used after close. */
  CLOSED(8, "the adapter model was used after close"),
  /** A training step's loss or updated state is not finite; the step was not committed. */
  NON_FINITE(9, "a training step's loss or updated parameters and moments are NaN or infinite: the step was not"
      + " committed (state and step count unchanged; names the step), or a checkpoint of non-finite state was refused"),
  /** A host initializer's external data is somewhere ONNX Runtime would not read it from, or does not fit its file. */
  EXTERNAL_DATA(10, "a host initializer's external data is at a location that is not allowed (absolute, outside the"
      + " host's folder, through a symbolic link out of it) or its offset and length do not fit the data file"),
  /** The host file is not the one the graft was compiled against. */
  HOST_CHANGED(11, "the host model's SHA-256 differs from the manifest's `host_sha256` (the host the graft was compiled"
      + " against); open with `ModelOptions.withHostChangeAllowed()` to use a deliberately changed host"),
  /** An adapter folder's keys are in another transformers layout than the one asked for. */
  PEFT_LAYOUT(40, "an adapter folder's keys are in another layout (key prefix: bare, `bert.`, `model.`, `transformer.`)"
      + " than the one given to `loadAdapter(dir, layout)`; names both, with a key of each"),
  /** A merged export was asked to merge every adapter, and some have no merged form. */
  NOT_MERGEABLE(50, "a merged export was asked for with every adapter merged, but some adapters have no merged form"
      + " (names each with its sites and the reason); allow unmerged parts to export them as adapters"),
  /** The graft cannot be exported as asked (graphs compiled without the export variants, an element type). */
  EXPORT_UNSUPPORTED(51, "the graft cannot be exported as asked: its graphs were compiled without the update and"
      + " merged graphs (recompile), or the host's element type is not float32"),
  /** A request names an adapter the server has not registered. */
  ADAPTER_NOT_REGISTERED(60, "a request names an adapter that the server has not registered (names it and lists those registered)"),
  /** A serving request that cannot be read or served: malformed JSON, too large, fields missing or of another type. */
  REQUEST_INVALID(61, "a serving request cannot be read or served: malformed JSON, over the size limit, a field missing or"
      + " of another type, an unknown path or method"),
  /** An {@code .onnx_adapter} file is malformed or not one ONNX Runtime's format version 1 reads. */
  ONNX_ADAPTER(70, "an `.onnx_adapter` file is malformed: not a `TORT` FlatBuffers file, a format version other than"
      + " 1, an offset, vtable, string or vector outside the file or misaligned, a parameter without a name, dims or"
      + " raw data, a duplicate name, a dims product that overflows, raw data whose size does not fit its dims and"
      + " type, an unsupported data type, or a file too large to read"),
  /** A host input value outside the rows of the table it indexes (an id outside the vocabulary, a negative id). */
  INDEX_OUT_OF_RANGE(90, "a host input's value is outside the table it indexes: an id not in [0, vocabulary size) or"
      + " a type id not in [0, type count) (names the input, the limit, the value and its [row, column])"),
  /** A batch whose sequence is longer than the host's position table. */
  SEQUENCE_TOO_LONG(91, "a batch's sequence is longer than the host's position table allows, less the virtual tokens"
      + " prompt tuning puts first (names the input, the limit, the virtual-token count and the length given)"),
  /** Generation would pass the most tokens a sequence may hold (the host's positions or the options' maxLength). */
  SEQUENCE_LIMIT(100, "generation would make a sequence longer than the host's positions (or GenerationOptions.maxLength):"
      + " prompt length plus maxNewTokens exceeds the limit, which the message states"),
  /** A merge names a method the registry does not have. */
  MERGE_METHOD(130, "a merge names a method that is not in the registry (names it and lists those there)"),
  /** A merge's inputs cannot be merged: none, weights missing, sites or heads that disagree, an adapter without a ΔW form. */
  MERGE_INPUTS(131, "a merge's inputs cannot be merged as given: no input, a weight count or value that does not fit,"
      + " a site or head tensor whose widths differ between inputs, different hosts, non-finite values, an adapter"
      + " without a weight update at linear sites, or factors of different ranks for an A/B-wise method"),
  /** A merge option out of range (density, drop rate, scaling, rank). */
  MERGE_OPTION(132, "a merge option is out of range: density not in (0, 1], drop rate not in [0, 1), a scaling that is"
      + " not finite, a rank below 1 (names the option, its range and the value)"),
  /** A merge result does not fit where it is written: a target graft that is not a LoRA on its sites, a bias PEFT cannot hold. */
  MERGE_TARGET(133, "a merge result does not fit where it is written: a target graft whose adapter is not a plain"
      + " LoRA over every merged site, a site or head tensor the target lacks, a bias change a PEFT LoRA folder cannot"
      + " hold, or a dense update written as factors before it is re-factored"),
  /** A kept-checkpoints folder's index is malformed or does not fit the folder. */
  CHECKPOINT_INDEX(140, "a kept-checkpoints folder's `index.json` is malformed or does not fit the folder: not strict"
      + " JSON, too large, another format, a field missing or of another type, a file name that is not the one its"
      + " step gives, a checkpoint file missing or not a regular file, steps not increasing, more checkpoints than it"
      + " keeps, a loss or metric that is not finite"),
  /** A checkpoint keeper was started on a folder that holds another run's checkpoints. */
  CHECKPOINT_FOLDER_IN_USE(141, "a checkpoint keeper was started on a folder that already holds kept checkpoints of"
      + " another run (another graft or settings, or a run that does not resume): use an empty folder or delete it"),
  /** Metrics weights cannot be computed for the checkpoints given. */
  CHECKPOINT_WEIGHTS(142, "metrics-weighted averaging cannot weight the checkpoints: no checkpoints, a metric not"
      + " recorded, not finite or not positive (loss weighting takes 1/loss, so a loss must be > 0), or an exponent"
      + " that is negative or not finite"),
  /** Spark scoring: a DataFrame column the scorer cannot read or write. */
  SCORING_COLUMN(150, "Spark scoring: the input column is missing or of a type the scorer cannot read (text: string;"
      + " token ids: array<int> or array<bigint>), or an output column exists already or is named twice (names the"
      + " column, what was expected and what was given)"),
  /** Spark scoring: an output the graft's task has not (or a task with no pooled head). */
  SCORING_OUTPUT(151, "Spark scoring: the graft's task has no such output (a regression graft's probabilities), or no"
      + " pooled head to score rows with (causal LM, token classification); names the task and what it offers"),
  /** Spark scoring: a row that cannot be scored. */
  SCORING_ROW(152, "Spark scoring: a row cannot be scored: its input is null, an empty array of token ids, or has a"
      + " null token id (names the column and the row); raised on an executor, it fails the task and the job"),
  NO_DATA_PARALLEL_GRAPHS(160, "data-parallel training was asked of a graft compiled without its gradient and apply graphs"
      + " (compile with `GraphVariant.GRADIENT`)"),
  ALL_REDUCE(161, "an all-reduce between data-parallel replicas failed: a peer did not connect or answer within the"
      + " timeout, closed its connection, or sent a frame other than the one expected (magic, step, sender or length"
      + " wrong, or over the frame limit); names the peer and the step"),
  TRAINING_STAGE_FAILED(162, "a data-parallel training stage failed more often than allowed (names the attempts, the"
      + " checkpointed step it last resumed from and the last failure)"),
  CALIBRATION_REQUIRED(340, "a graft whose adapters start from calibration (LoRA init corda_ipm / corda_kpm) was"
      + " trained before AdapterModel.calibrate set its factors (names the parameters still at zero)"),
  CALIBRATION_DATA(341, "calibration got no data, or data whose site inputs give no usable covariance (all zero or"
      + " not finite; names the site input and the batch)"),
  SITE_FEATURES(353, "site features (AdapterModel.siteFeatures, SEMA's descriptors) cannot be read: a value not"
      + " finite, of another rank or width than expected, or an example whose attention mask keeps no position"
      + " (names the tensor, the batch and the example)"),
  DESCRIPTOR_OPTIONS(354, "a SEMA descriptor option or input is invalid: its rank, fewer than 2 feature rows, or a"
      + " schedule value out of range (epochs, learning rate, momentum, weight decay, batch size, records; names"
      + " the value expected and the one given)"),
  SEMA_TASK_LABELS(355, "a SEMA task's labels are unusable: one class only, a negative label, or an evaluated"
      + " example labelled outside the task's classes (labels are each task's own, 0, 1, …; names the task,"
      + " the classes and the label given)"),
  SEMA_TASK_NAME(356, "a SEMA task name is repeated in learn, or evaluated without having been learned (names the"
      + " task and the tasks learned)"),
  /** The CUDA execution provider is in the ONNX Runtime on the classpath but its libraries did not load. */
  CUDA_LIBRARIES(370, "the CUDA execution provider is in the ONNX Runtime on the classpath (`onnxruntime_gpu`) but"
      + " did not load: names the libraries the loader reported missing and the CUDA 12 and cuDNN 9 libraries it needs"
      + " on the library path"),
  QUANTIZED_NOT_QUANTIZED(300, "a bit-packed (quantized) adapter was saved or loaded for a graft none of whose"
      + " parameters is quantized (compile it with `quantizeBits`)"),
  QUANTIZED_FILE_INVALID(301, "a bit-packed adapter file does not match the graft or is malformed: its format, a"
      + " tensor's bits, shape, packed length, padding bits, mean or standard deviation (names the tensor, expected"
      + " and given)"),
  QUANTIZED_CODES_UNREPRODUCIBLE(303, "a bit-packed tensor's codes cannot be given float32 weights that standardize"
      + " back to them with its mean and standard deviation (a mean some 10^6 deviations from zero; names the tensor,"
      + " the index and the code)"),
  /** A sparse difference (LT-SFT) applied to a model whose parameter is missing or of another shape. */
  SPARSE_DIFF_SHAPE(330, "a sparse difference names a parameter the model lacks or gives it another shape (names the"
      + " parameter, the expected and the given shape)"),
  /** A sparse difference file that is not one. */
  SPARSE_DIFF_FILE(331, "a sparse difference file is malformed: a parameter without its indices, values or shape, a"
      + " shape not positive, indices out of range, not increasing or not as many as the values, a value not finite"),
  /** Sparse fine-tuning asked of a graft with no fed update masks. */
  NO_SPARSE_PARAMETERS(332, "sparse fine-tuning was asked of a graft with no parameter its training step takes an update"
      + " mask for (declare `ltsft` / `@SparseFineTuning`), or of K outside 1..the number of such entries"),
  /** A host input given with another element type than the manifest's. */
  HOST_INPUT_TYPE(380, "a host input was given with another element type than the manifest declares (names the input,"
      + " the expected and the given type; int64 values may feed an int32 input)"),
  /** A float host input holds NaN or an infinity. */
  HOST_INPUT_NOT_FINITE(381, "a float host input holds NaN or an infinity (names the input and the element's index)"),
  /** A host tensor whose shape does not hold its values. */
  HOST_TENSOR_SHAPE(382, "a host tensor's shape does not hold its values: a negative size, more elements than a Java"
      + " array holds, a count other than the shape's, nested arrays not of a primitive"
      + " element type"),
  /** A host tensor read as what it is not. */
  HOST_TENSOR_KIND(383, "a host tensor was read as another element type or form than it has (float pixels as token"
      + " rows, e.g. `Batch.inputs()` of a batch with float inputs: use `Batch.feed()`)");

  private final int number;
  private final String summary;

  RuntimeErrorCode(int number, String summary) {
    this.number = number;
    this.summary = summary;
  }

  /** The stable code, e.g. {@code GRAFT-R003}. */
  public String code() {
    return String.format(Locale.ROOT, "GRAFT-R%03d", number);
  }

  /** What the code means: its row in {@code spec/README.md}'s table of run-time errors. */
  public String summary() {
    return summary;
  }

  /** The message with its code, e.g. {@code [GRAFT-R008] the adapter model is closed}. */
  public String format(String message) {
    return "[" + code() + "] " + message;
  }
}
