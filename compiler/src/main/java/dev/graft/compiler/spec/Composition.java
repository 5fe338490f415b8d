package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * One composition block of a graft as declared: its text in Graft's composition syntax (see
 * {@link CompositionBlock}; the builder writes a block's {@code toString()}), parsed and checked by
 * the compiler.
 *
 * @param expression e.g. {@code "stack(lang, fuse(a, b))"}
 * @param source opaque reference to where it was written ({@code @Compose}'s value), for diagnostics only
 */
public record Composition(String expression, @Nullable Object source) {
  /** The composition of a block built in code. */
  public static Composition of(CompositionBlock block) {
    return new Composition(block.toString(), null);
  }
}
