package dev.graft.compiler;

import dev.graft.compiler.passes.SavedActivations;

import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.onnx.Onnx.ModelProto;
import org.jspecify.annotations.Nullable;

/**
 * The compiler's output: the inference graph, the training-step graph, the manifest that
 * names their tensors and, when asked for, the gathered multi-adapter graph. Neither graph holds the host's frozen weights: they are declared as
 * external data (see {@link Manifest#getHostInitializersList()}) and fed by the runtime.
 */
public record CompiledGraft(ModelProto inference, ModelProto train, Manifest manifest, @Nullable ModelProto gathered) {
  public CompiledGraft(ModelProto inference, ModelProto train, Manifest manifest) {
    this(inference, train, manifest, null);
  }

  /** Resource file name suffixes, after the graft's name. */
  public static final String INFERENCE_SUFFIX = ".infer.onnx";

  public static final String TRAIN_SUFFIX = ".train.onnx";
  /** The gathered multi-adapter graph ({@link GraphVariant#GATHERED}), when compiled. */
  public static final String GATHERED_SUFFIX = ".gathered.onnx";
  public static final String MANIFEST_SUFFIX = ".manifest.textproto";

  public String name() {
    return manifest.getName();
  }

  /**
   * Bytes of forward activations the training step keeps for its backward pass, for the given
   * sizes of the host's symbolic dimensions (e.g. {@code batch_size=16, sequence_length=64}).
   */
  public long savedActivationBytes(java.util.Map<String, Long> sizes) {
    return SavedActivations.bytes(manifest.getSavedActivationsList(), sizes);
  }

  /** The manifest in protobuf text format, as written to {@code <name>.manifest.textproto}. */
  public String manifestText() {
    return com.google.protobuf.TextFormat.printer().printToString(manifest);
  }
}
