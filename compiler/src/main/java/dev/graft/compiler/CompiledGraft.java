package dev.graft.compiler;

import dev.graft.compiler.passes.SavedActivations;

import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.jspecify.annotations.Nullable;

/**
 * The compiler's output: the inference graph, the training-step graph, the update graph (the
 * linear sites' weight updates, {@code GraphVariant.UPDATE}), the merged graph ({@code
 * GraphVariant.MERGE}, which an export fills), the manifest that names their tensors and, when
 * asked for, the gathered multi-adapter graph ({@code GraphVariant.GATHERED}) and the data-parallel
 * halves of the training step ({@code GraphVariant.GRADIENT}, {@code GraphVariant.APPLY}). No graph holds the
 * host's frozen weights: they are declared as external data (see {@link
 * Manifest#getHostInitializersList()}) and fed by the runtime.
 */
public record CompiledGraft(ModelProto inference, ModelProto train, ModelProto update, ModelProto merge,
    Manifest manifest, @Nullable ModelProto gathered, @Nullable ModelProto gradient, @Nullable ModelProto apply) {
  public CompiledGraft(ModelProto inference, ModelProto train, ModelProto update, ModelProto merge,
      Manifest manifest) {
    this(inference, train, update, merge, manifest, null);
  }

  public CompiledGraft(ModelProto inference, ModelProto train, ModelProto update, ModelProto merge,
      Manifest manifest, @Nullable ModelProto gathered) {
    this(inference, train, update, merge, manifest, gathered, null, null);
  }

  /** Resource file name suffixes, after the graft's name. */
  public static final String INFERENCE_SUFFIX = ".infer.onnx";

  public static final String TRAIN_SUFFIX = ".train.onnx";
  public static final String UPDATE_SUFFIX = ".update.onnx";
  public static final String MERGE_SUFFIX = ".merge.onnx";
  /** The gathered multi-adapter graph ({@link GraphVariant#GATHERED}), when compiled. */
  public static final String GATHERED_SUFFIX = ".gathered.onnx";
  /** The data-parallel gradient graph ({@link GraphVariant#GRADIENT}), when compiled. */
  public static final String GRADIENT_SUFFIX = ".gradient.onnx";
  /** The data-parallel apply graph ({@link GraphVariant#APPLY}), when compiled. */
  public static final String APPLY_SUFFIX = ".apply.onnx";
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

  /**
   * Writes the graphs and the manifest into folder {@code dir} (created if missing) as {@code
   * <name>.infer.onnx}, {@code <name>.train.onnx}, {@code <name>.update.onnx}, {@code
   * <name>.merge.onnx}, {@code <name>.manifest.textproto} and, when
   * compiled, {@code <name>.gathered.onnx}, {@code <name>.gradient.onnx} and {@code <name>.apply.onnx}: the folder the runtime opens with {@code
   * AdapterGraphs.fromDirectory} and the serve command serves. Each file is written beside its
   * final name and moved over it.
   */
  public void writeTo(Path dir) {
    try {
      writeFiles(dir);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write graft " + name() + " to " + dir + ": " + e.getMessage(), e);
    }
  }

  private void writeFiles(Path dir) throws IOException {
    Files.createDirectories(dir);
    write(dir, name() + INFERENCE_SUFFIX, inference.toByteArray());
    write(dir, name() + TRAIN_SUFFIX, train.toByteArray());
    write(dir, name() + UPDATE_SUFFIX, update.toByteArray());
    write(dir, name() + MERGE_SUFFIX, merge.toByteArray());
    if (gathered != null) {
      write(dir, name() + GATHERED_SUFFIX, gathered.toByteArray());
    }
    if (gradient != null && apply != null) {
      write(dir, name() + GRADIENT_SUFFIX, gradient.toByteArray());
      write(dir, name() + APPLY_SUFFIX, apply.toByteArray());
    }
    write(dir, name() + MANIFEST_SUFFIX, manifestText().getBytes(StandardCharsets.UTF_8));
  }

  private static void write(Path dir, String file, byte[] bytes) throws IOException {
    Path tmp = dir.resolve(file + ".tmp");
    Files.write(tmp, bytes);
    Files.move(tmp, dir.resolve(file), StandardCopyOption.REPLACE_EXISTING,
        StandardCopyOption.ATOMIC_MOVE);
  }

  /** The manifest in protobuf text format, as written to {@code <name>.manifest.textproto}. */
  public String manifestText() {
    return com.google.protobuf.TextFormat.printer().printToString(manifest);
  }
}
