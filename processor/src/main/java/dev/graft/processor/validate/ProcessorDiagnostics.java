package dev.graft.processor.validate;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
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

  public static Diagnostic internalError(@Nullable Object source, String graft, Throwable error) {
    return Diagnostic.of(ErrorCode.INTERNAL_ERROR, source, null, graft, error);
  }
}
