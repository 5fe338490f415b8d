package dev.graft.compiler.diag;

import org.jspecify.annotations.Nullable;

/**
 * One compile-time error.
 *
 * @param source the opaque source reference of the declaration part at fault (from the spec)
 * @param attribute the name of the attribute at fault (e.g. {@code "rank"}), or null for the
 *     whole declaration part
 */
public record Diagnostic(
    ErrorCode code, String message, @Nullable Object source, @Nullable String attribute) {

  public static Diagnostic of(
      ErrorCode code, @Nullable Object source, @Nullable String attribute, Object... args) {
    return new Diagnostic(code, code.format(args), source, attribute);
  }
}
