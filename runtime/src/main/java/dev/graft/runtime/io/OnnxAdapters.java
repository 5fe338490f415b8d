package dev.graft.runtime.io;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * A graft's adapter parameters as an {@code .onnx_adapter} file ({@link OnnxAdapterFile}): the
 * parameters the unmerged export takes as graph inputs (those of an adapter declaration; the
 * head's are fixed in the export), each under its input's name (the manifest's {@code
 * export_name}), in the parameter's shape, in manifest order. A load reads and checks the whole
 * file (names, shapes, finite values) before it sets anything.
 */
public final class OnnxAdapters {
  private OnnxAdapters() {}

  /**
   * The graph input of the unmerged export that parameter {@code p} is fed as: the manifest's
   * {@code export_name} (PEFT's module-state name, as Olive and onnxruntime-genai name LoRA inputs).
   */
  static String exportName(Manifest m, Parameter p) {
    if (p.getExportName().isEmpty()) {
      throw new FormatException(m.getName(), "parameter " + p.getName() + " has no export_name in the manifest;"
          + " recompile the graft to save or load .onnx_adapter files");
    }
    return p.getExportName();
  }

  /** The parameters an unmerged export takes as graph inputs: those of an adapter declaration, in manifest order. */
  static List<Parameter> adapterParameters(Manifest m) {
    List<Parameter> out = new ArrayList<>();
    for (Parameter p : m.getParametersList()) {
      if (p.getAdapter() > 0) {
        out.add(p);
      }
    }
    return out;
  }

  /** Writes the store's adapter parameters to {@code file} as elements of {@code type}, replacing it atomically. */
  public static void save(ParameterStore store, Path file, OnnxAdapterFile.DataType type) {
    List<OnnxAdapterFile.Parameter> params = new ArrayList<>();
    for (Parameter p : adapterParameters(store.getManifest())) {
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      params.add(OnnxAdapterFile.Parameter.of(exportName(store.getManifest(), p), type, shape, store.getParameter(p.getName())));
    }
    OnnxAdapterFile.write(file, new OnnxAdapterFile.Contents(0, 0, params));
  }

  /**
   * Reads {@code file} into the store's adapter parameters (the head's are left as they are): it
   * must hold exactly the adapter parameters' export names, each in the parameter's shape, with finite values; float16 and bfloat16 values are
   * widened to float32 (exactly), each such parameter named in the returned notes.
   */
  public static List<String> load(ParameterStore store, Path file) {
    Manifest m = store.getManifest();
    String src = file.toString();
    Map<String, OnnxAdapterFile.Parameter> byName = new LinkedHashMap<>();
    for (OnnxAdapterFile.Parameter p : OnnxAdapterFile.read(file).parameters()) {
      byName.put(p.name(), p);
    }
    Map<String, float[]> values = new LinkedHashMap<>();
    List<String> notes = new ArrayList<>();
    Set<String> expected = new TreeSet<>();
    for (Parameter p : adapterParameters(m)) {
      String name = exportName(m, p);
      expected.add(name);
      OnnxAdapterFile.Parameter given = byName.get(name);
      if (given == null) {
        throw new FormatException(src, "has no parameter '" + name + "' (parameter " + p.getName() + " of graft '"
            + m.getName() + "')");
      }
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      if (!Arrays.equals(shape, given.dims())) {
        throw new TensorMismatchException(name, Arrays.toString(shape), given.type() + Arrays.toString(given.dims()), src);
      }
      if (given.type() != OnnxAdapterFile.DataType.FLOAT) {
        notes.add("parameter '" + name + "' is " + given.type() + " in " + src + ", widened to FLOAT");
      }
      values.put(p.getName(), TensorData.requireFinite(src, name, given.toFloats()));
    }
    Set<String> extra = new TreeSet<>(byName.keySet());
    extra.removeAll(expected);
    if (!extra.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, src + " holds parameters graft '" + m.getName()
          + "' does not have: " + extra + " (was it saved from another adapter?)");
    }
    values.forEach(store::setParameter);
    return notes;
  }
}
