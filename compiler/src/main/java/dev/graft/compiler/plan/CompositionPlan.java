package dev.graft.compiler.plan;

import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.spec.Composition;
import dev.graft.compiler.spec.CompositionBlock.Operator;
import java.util.List;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * The checked compositions of a graft and what its named adapters do in training: each block's
 * members resolved to planned adapters, and the named adapters the training step freezes.
 *
 * @param blocks the composition blocks, in declaration order
 * @param frozen names of the named adapters the training step does not update (not listed in the
 *     graft's train list, or under a fuse block)
 */
public record CompositionPlan(List<Resolved> blocks, Set<String> frozen) {
  public CompositionPlan {
    blocks = List.copyOf(blocks);
    frozen = Set.copyOf(frozen);
  }

  public static final CompositionPlan EMPTY = new CompositionPlan(List.of(), Set.of());

  /** A member of a block: a named adapter or a block. */
  public sealed interface Part permits Leaf, Block {}

  /**
   * A named composable adapter in a block.
   *
   * @param index its declaration's index in the plan's adapters
   */
  public record Leaf(int index, PlannedAdapter adapter, ComposableKind kind) implements Part {}

  /**
   * A block over its members.
   *
   * @param weights {@code average}'s fixed weights or {@code split}'s widths, one per member; empty
   *     for none ({@code average} then learns its weights)
   * @param id a name for the block's own parameters and nodes, unique in the graft: the operator
   *     and its adapters' names, e.g. {@code fuse_a_b}
   */
  public record Block(Operator operator, List<Part> members, List<Double> weights, String id) implements Part {
    public Block {
      members = List.copyOf(members);
      weights = List.copyOf(weights);
    }
  }

  /** A checked top-level block: its declaration, its tree, and the host nodes of the sites it combines at (graph order). */
  public record Resolved(Composition composition, Block root, List<String> siteNodes) {}

  /** Whether the named adapter {@code name} is placed by a composition block. */
  public boolean composes(@Nullable String name) {
    return name != null && blocks.stream().anyMatch(b -> leaves(b.root()).stream()
        .anyMatch(l -> l.adapter().spec().name().equals(name)));
  }

  /** The leaves under a part, left to right. */
  public static List<Leaf> leaves(Part part) {
    if (part instanceof Leaf l) {
      return List.of(l);
    }
    return ((Block) part).members().stream().flatMap(m -> leaves(m).stream()).toList();
  }
}
