package dev.graft.fuzz;

/**
 * Raw exceptions of a known area whose fixes are under way elsewhere (issue 15, finding 6: ONNX
 * import and compilation of hostile hosts raise IllegalStateException "graph has a cycle" /
 * "rank unknown", index errors, IllegalArgumentException and more instead of coded
 * diagnostics). The bounded run in {@code verify} tolerates a {@link RuntimeException} thrown
 * from the compiler ({@code dev.graft.compiler.*} as the first Graft frame) so that it stays
 * green until that fix lands; then this class is deleted. Errors (OutOfMemoryError,
 * StackOverflowError), exceptions from anywhere else and diagnostics without codes are never
 * tolerated. The {@code -Pfuzz} campaign runs with {@code -Dgraft.fuzz.strict=true} and reports
 * them all.
 */
final class KnownFindings {
  static final String STRICT = "graft.fuzz.strict";

  private KnownFindings() {}

  /** Whether {@code raw}, thrown by compiling a fuzzed host, is tolerated in this run. */
  static boolean toleratedCompileException(RuntimeException raw) {
    if (Boolean.getBoolean(STRICT)) {
      return false;
    }
    for (StackTraceElement frame : raw.getStackTrace()) {
      if (frame.getClassName().startsWith("dev.graft.")) {
        return frame.getClassName().startsWith("dev.graft.compiler.");
      }
    }
    return false;
  }
}
