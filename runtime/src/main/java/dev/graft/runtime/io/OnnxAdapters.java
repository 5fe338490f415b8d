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
 * A graft's parameters as an {@code .onnx_adapter} file ({@link OnnxAdapterFile}): each parameter
 * under the name the unmerged export gives its graph input (the manifest's {@code export_name}),
 * in the parameter's shape, in manifest order. A load reads and checks the whole file (names, shapes, finite values) before it sets
 * anything.
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

  /** Writes the store's parameters to {@code file} as elements of {@code type}, replacing it atomically. */
  public static void save(ParameterStore store, Path file, OnnxAdapterFile.DataType type) {
    List<OnnxAdapterFile.Parameter> params = new ArrayList<>();
    for (Parameter p : store.getManifest().getParametersList()) {
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      params.add(OnnxAdapterFile.Parameter.of(exportName(store.getManifest(), p), type, shape, store.getParameter(p.getName())));
    }
    OnnxAdapterFile.write(file, new OnnxAdapterFile.Contents(0, 0, params));
  }

  /**
   * Reads {@code file} into the store's parameters: it must hold exactly the parameters' export
   * names, each in the parameter's shape, with finite values; float16 and bfloat16 values are
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
    for (Parameter p : m.getParametersList()) {
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
