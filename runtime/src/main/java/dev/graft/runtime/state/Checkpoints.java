package dev.graft.runtime.state;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.io.DType;
import dev.graft.runtime.io.Safetensors;
import dev.graft.runtime.io.TensorData;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Training checkpoints: every parameter, its AdamW moments and the step count in one safetensors
 * file, replaced atomically (temporary file, forced to disk, renamed over the checkpoint: a crash
 * mid-write leaves the previous checkpoint intact). A load checks everything (format, graft, host,
 * step, every tensor's name, shape, dtype and finiteness) before it changes anything. Tensors
 * are named as in the manifest ({@code <parameter>}, {@code <parameter>.adam_m}, {@code
 * <parameter>.adam_v}) in the graph's layout; the metadata names the graft, the host it was
 * compiled against and the step, plus whatever the caller adds (the {@code Trainer} records its
 * epoch and settings).
 */
public final class Checkpoints {
  public static final String FORMAT = "graft-checkpoint-1";
  static final String KEY_FORMAT = "format";
  static final String KEY_GRAFT = "graft";
  static final String KEY_HOST = "host_sha256";
  static final String KEY_STEP = "step";

  private Checkpoints() {}

  /**
   * Writes the training state to {@code file}, with {@code extra} metadata.
   *
   * @throws GraftException {@link RuntimeErrorCode#NON_FINITE} when a parameter or moment holds a
   *     NaN or infinite value (nothing is written, a previous checkpoint stays)
   */
  public static void save(ParameterState state, Path file, Map<String, String> extra) {
    String bad = state.firstNonFinite();
    if (bad != null) {
      throw new GraftException(RuntimeErrorCode.NON_FINITE, "not saving a checkpoint to " + file + " at step "
          + state.step() + ": tensor '" + bad + "' holds a NaN or infinite value");
    }
    Map<String, TensorData> tensors = new TreeMap<>();
    for (Parameter p : state.parameters()) {
      long[] shape = state.shape(p.getName());
      tensors.put(p.getName(), TensorData.ofFloats(shape, state.getParameter(p.getName())));
      if (state.trainable()) {
        tensors.put(p.getName() + state.getManifest().getTrain().getFirstMomentSuffix(),
            TensorData.ofFloats(shape, state.moment(p.getName(), false)));
        tensors.put(p.getName() + state.getManifest().getTrain().getSecondMomentSuffix(),
            TensorData.ofFloats(shape, state.moment(p.getName(), true)));
      }
    }
    Map<String, String> meta = new TreeMap<>(extra);
    meta.put(KEY_FORMAT, FORMAT);
    meta.put(KEY_GRAFT, state.getManifest().getName());
    meta.put(KEY_HOST, state.getManifest().getHostSha256());
    meta.put(KEY_STEP, Long.toString(state.step()));
    Safetensors.write(file, tensors, meta);
  }

  /**
   * Reads {@code file}, checks every tensor against the state before changing anything, then
   * sets the parameters, the AdamW moments (when the state trains) and the step count.
   *
   * @return the checkpoint's metadata
   */
  public static Map<String, String> load(ParameterState state, Path file) {
    String src = file.toString();
    Safetensors.Contents contents = readChecked(state.getManifest(), file);
    Map<String, String> meta = contents.metadata();
    long step;
    try {
      step = Long.parseLong(String.valueOf(meta.get(KEY_STEP)));
    } catch (NumberFormatException e) {
      throw new FormatException(src, "step must be an integer, got " + meta.get(KEY_STEP), e);
    }
    if (step < 0) {
      throw new FormatException(src, "step must be >= 0, got " + step);
    }
    String m = state.getManifest().getTrain().getFirstMomentSuffix();
    String v = state.getManifest().getTrain().getSecondMomentSuffix();
    Map<String, float[]> values = new LinkedHashMap<>();
    TreeSet<String> expected = new TreeSet<>();
    for (Parameter p : state.parameters()) {
      long[] shape = state.shape(p.getName());
      for (String name : state.trainable()
          ? new String[] {p.getName(), p.getName() + m, p.getName() + v}
          : new String[] {p.getName()}) {
        expected.add(name);
        TensorData t = contents.tensors().get(name);
        if (t == null) {
          throw new FormatException(src, "has no tensor '" + name + "'");
        }
        if (t.dtype() != DType.F32 || !Arrays.equals(t.shape(), shape)) {
          throw new TensorMismatchException(name, "F32" + Arrays.toString(shape), t.dtype() + Arrays.toString(t.shape()), src);
        }
        values.put(name, TensorData.requireFinite(src, name, t.toFloats()));
      }
    }
    TreeSet<String> extra = new TreeSet<>(contents.tensors().keySet());
    extra.removeAll(expected);
    extra.removeIf(name -> !state.trainable() && (name.endsWith(m) || name.endsWith(v)));
    if (!extra.isEmpty()) {
      throw new FormatException(src, "holds tensors this graft does not have: " + extra);
    }
    for (Parameter p : state.parameters()) {
      state.setParameter(p.getName(), values.get(p.getName()));
      if (state.trainable()) {
        state.setMoment(p.getName(), false, values.get(p.getName() + m));
        state.setMoment(p.getName(), true, values.get(p.getName() + v));
      }
    }
    state.setStep(step);
    return meta;
  }
  /**
   * The parameter values (no moments) of checkpoint {@code file}, checked against {@code manifest}
   * as {@link #load} checks them (format, graft, host, every parameter's name, shape, dtype and
   * finiteness); changes nothing.
   *
   * @return the values by parameter name, in manifest order
   */
  public static Map<String, float[]> readParameters(Manifest manifest, Path file) {
    String src = file.toString();
    Safetensors.Contents contents = readChecked(manifest, file);
    Map<String, float[]> values = new LinkedHashMap<>();
    for (Parameter p : manifest.getParametersList()) {
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      TensorData t = contents.tensors().get(p.getName());
      if (t == null) {
        throw new FormatException(src, "has no tensor '" + p.getName() + "'");
      }
      if (t.dtype() != DType.F32 || !Arrays.equals(t.shape(), shape)) {
        throw new TensorMismatchException(p.getName(), "F32" + Arrays.toString(shape),
            t.dtype() + Arrays.toString(t.shape()), src);
      }
      values.put(p.getName(), TensorData.requireFinite(src, p.getName(), t.toFloats()));
    }
    return values;
  }

  /** Reads {@code file} and checks that it is a checkpoint of this graft and host. */
  private static Safetensors.Contents readChecked(Manifest manifest, Path file) {
    if (!Files.isRegularFile(file)) {
      throw new GraftException(RuntimeErrorCode.IO, "no checkpoint at " + file.toAbsolutePath());
    }
    String src = file.toString();
    Safetensors.Contents contents = Safetensors.read(file);
    Map<String, String> meta = contents.metadata();
    if (!FORMAT.equals(meta.get(KEY_FORMAT))) {
      throw new FormatException(src, "not a Graft checkpoint: format is " + meta.get(KEY_FORMAT) + ", expected " + FORMAT);
    }
    String graft = manifest.getName();
    if (!graft.equals(meta.get(KEY_GRAFT))) {
      throw new FormatException(src, "was saved from graft '" + meta.get(KEY_GRAFT) + "', this state is '" + graft + "'");
    }
    String host = manifest.getHostSha256();
    if (!host.isEmpty() && !host.equals(meta.get(KEY_HOST))) {
      throw new FormatException(src, "was trained on host sha256 " + meta.get(KEY_HOST) + ", this graft's host is " + host);
    }
    return contents;
  }
}
