package dev.graft.processor.validate;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/** Errors only javac can find, made here and nowhere else. */
public final class ProcessorDiagnostics {
  private ProcessorDiagnostics() {}

  public static Diagnostic notAnInterface(@Nullable Object source, String type, String kind) {
    return Diagnostic.of(ErrorCode.NOT_AN_INTERFACE, source, null, type, kind);
  }

  public static Diagnostic taskMissing(@Nullable Object source, String type) {
    return Diagnostic.of(ErrorCode.TASK_MISSING, source, null, type);
  }

  public static Diagnostic tasksConflict(@Nullable Object source, String type, int count, String tasks) {
    return Diagnostic.of(ErrorCode.TASKS_CONFLICT, source, null, type, count, tasks);
  }

  public static Diagnostic writeFailed(@Nullable Object source, String file, String reason) {
    return Diagnostic.of(ErrorCode.OUTPUT_WRITE_FAILED, source, null, file, reason);
  }

  /**
   * GRAFT380 for every host input of an element type the runtime does not feed (float16, uint8,
   * string, …), on the declaration's {@code host}.
   */
  public static List<Diagnostic> unfedInputs(@Nullable Object source, Manifest manifest) {
    List<Diagnostic> out = new ArrayList<>();
    for (HostInput in : manifest.getInputsList()) {
      String fed = switch (in.getElemType()) {
        case 1, 6, 7, 9, 11 -> null; // FLOAT, INT32, INT64, BOOL, DOUBLE
        case 2 -> "uint8";
        case 3 -> "int8";
        case 4 -> "uint16";
        case 5 -> "int16";
        case 8 -> "string";
        case 10 -> "float16";
        case 12 -> "uint32";
        case 13 -> "uint64";
        case 16 -> "bfloat16";
        default -> "ONNX element type " + in.getElemType();
      };
      if (fed != null) {
        out.add(Diagnostic.of(ErrorCode.HOST_INPUT_TYPE_UNFED, source, "host", in.getName(), fed));
      }
    }
    return out;
  }

  public static Diagnostic internalError(@Nullable Object source, String graft, Throwable error) {
    return Diagnostic.of(ErrorCode.INTERNAL_ERROR, source, null, graft, error);
  }
}
