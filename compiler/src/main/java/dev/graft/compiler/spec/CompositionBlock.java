package dev.graft.compiler.spec;

import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * A composition of named adapters at the linear layers they share, as declared: an adapter's name
 * ({@link AdapterRef}) or a block of an {@link Operator} over members ({@link Combination}). The
 * builder makes these trees; the processor parses {@code @Compose} text into them ({@link
 * CompositionParser}). {@link #toString()} prints Graft's composition syntax canonically, e.g.
 * {@code stack(lang, fuse(a, b))} or {@code average(a: 0.25, b: 0.75)}, which parses back to the
 * same tree; the compiler checks what the tree's shape cannot (names, nesting, weights, sites).
 */
public sealed interface CompositionBlock permits CompositionBlock.AdapterRef, CompositionBlock.Combination {
  /** The blocks, by their names in the syntax. */
  enum Operator {
    /** {@code b(a(v))}: the members in series, left to right. */
    STACK,
    /** {@code v + Σ (c_i(v) − v)}: the sum of the members' updates. */
    PARALLEL,
    /** {@code v + Σ w_i (c_i(v) − v)}: fixed weights (summing to 1) or learned {@code softmax(θ)}. */
    AVERAGE,
    /** AdapterFusion: attention over the members' updates per token. */
    FUSE,
    /** The value's last axis cut into consecutive parts of the given widths, member i on part i. */
    SPLIT;

    /** The name in the syntax: {@code stack}, {@code parallel} …. */
    public String keyword() {
      return name().toLowerCase(Locale.ROOT);
    }
  }

  /** A named adapter in a composition. */
  record AdapterRef(String name) implements CompositionBlock {
    @Override
    public String toString() {
      return name;
    }
  }

  /**
   * One member of a block: a named adapter or a block, with its weight under {@code average} or
   * its width under {@code split} (null where none is written).
   */
  record Member(CompositionBlock block, @Nullable Double weight) {
    @Override
    public String toString() {
      if (weight == null) {
        return block.toString();
      }
      double w = weight;
      return block + ": " + (w == Math.rint(w) && Math.abs(w) < 1e15 ? Long.toString((long) w) : Double.toString(w));
    }
  }

  /** A block over members, e.g. {@code parallel(a, b)}. */
  record Combination(Operator operator, List<Member> members) implements CompositionBlock {
    public Combination {
      members = List.copyOf(members);
    }

    @Override
    public String toString() {
      return operator.keyword() + members.stream().map(Member::toString).collect(Collectors.joining(", ", "(", ")"));
    }
  }
}
