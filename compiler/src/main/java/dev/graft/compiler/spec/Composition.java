package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * One composition block of a graft as declared: the typed block tree, built by the builder ({@code
 * Graft.stack(…)}) or parsed once by the processor from {@code @Compose}'s text ({@link
 * CompositionParser}), and checked by the compiler.
 *
 * @param block the block; a top-level {@link CompositionBlock.AdapterRef} (which the builder can
 *     make) is an error of the composition check, as the syntax has no such composition
 * @param source opaque reference to where it was written ({@code @Compose}'s value), for diagnostics only
 */
public record Composition(CompositionBlock block, @Nullable Object source) {
  /** The composition of a block built in code. */
  public static Composition of(CompositionBlock block) {
    return new Composition(block, null);
  }

  /**
   * The block in Graft's composition syntax, printed canonically ({@code stack(lang, fuse(a,
   * b))}): what the manifest records and messages quote.
   */
  public String expression() {
    return block.toString();
  }
}
