package dev.graft.compiler.plan;

import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.Composition;
import dev.graft.compiler.spec.CompositionBlock;
import dev.graft.compiler.spec.CompositionBlock.AdapterRef;
import dev.graft.compiler.spec.CompositionBlock.Combination;
import dev.graft.compiler.spec.CompositionBlock.Member;
import dev.graft.compiler.spec.CompositionBlock.Operator;
import dev.graft.compiler.spec.CompositionParser;
import dev.graft.compiler.spec.GraftSpec;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * The checks of named adapters, composition blocks and the train list (part of the validation
 * pass) on the spec's typed block trees: names well formed and unique; each composition a block,
 * its names known, named, composable and used once, its nesting allowed, its weights and widths
 * right and its adapters on the same sites; train entries known and not under a fuse block.
 * Collects every error (codes GRAFT080–GRAFT089; the processor reports GRAFT080 for text that does
 * not parse) on the annotation value at fault.
 */
final class CompositionCheck {
  /** What an adapter name must look like. */
  static final Pattern NAME = Pattern.compile("[a-z][a-z0-9_]*");
  /** How far fixed average weights may be from summing to 1. */
  private static final double WEIGHT_SUM_TOLERANCE = 1e-6;
  /** The annotation member of a composition's text ({@code @Compose(value)}) and of the train list ({@code @Graft(train)}). */
  private static final String VALUE = "value";
  private static final String TRAIN = "train";

  private final List<Diagnostic> errors;

  CompositionCheck(List<Diagnostic> errors) {
    this.errors = errors;
  }

  /** Reports malformed and repeated adapter names. */
  void checkNames(GraftSpec spec) {
    Set<String> seen = new TreeSet<>();
    for (AdapterSpec a : spec.adapters()) {
      if (!a.isNamed()) {
        continue;
      }
      if (!NAME.matcher(a.name()).matches()) {
        errors.add(Diagnostic.of(ErrorCode.ADAPTER_NAME_INVALID, a.source(), "name", a.name(),
            "must match [a-z][a-z0-9_]* (a lower-case letter, then lower-case letters, digits or '_')"));
      } else if (!seen.add(a.name())) {
        errors.add(Diagnostic.of(ErrorCode.ADAPTER_NAME_INVALID, a.source(), "name", a.name(),
            "is given to two adapter declarations; names must be unique in the graft"));
      }
    }
  }

  /** For the overlap rule: the index of the composition each adapter name appears in. */
  static Map<String, Integer> membership(GraftSpec spec) {
    Map<String, Integer> out = new HashMap<>();
    for (int i = 0; i < spec.compositions().size(); i++) {
      collectNames(spec.compositions().get(i).block(), i, out);
    }
    return out;
  }

  private static void collectNames(CompositionBlock b, int index, Map<String, Integer> out) {
    if (b instanceof AdapterRef r) {
      out.putIfAbsent(r.name(), index);
    } else {
      ((Combination) b).members().forEach(m -> collectNames(m.block(), index, out));
    }
  }

  /**
   * Checks the compositions and the train list against the planned adapters ({@code planned}:
   * those without errors, in declaration order).
   */
  CompositionPlan check(GraftSpec spec, List<PlannedAdapter> planned) {
    Set<String> declared = new TreeSet<>();
    spec.adapters().stream().filter(AdapterSpec::isNamed).forEach(a -> declared.add(a.name()));
    Map<String, Integer> byName = new LinkedHashMap<>();
    for (int i = 0; i < planned.size(); i++) {
      if (planned.get(i).spec().isNamed()) {
        byName.put(planned.get(i).spec().name(), i);
      }
    }
    Map<String, List<String>> uses = new LinkedHashMap<>();
    List<CompositionPlan.Resolved> blocks = new ArrayList<>();
    Set<String> fused = new TreeSet<>();
    for (Composition c : spec.compositions()) {
      if (!(c.block() instanceof Combination combination)) {
        // A lone name (the builder's ref("a")): the syntax's composition is a block.
        errors.add(Diagnostic.of(ErrorCode.COMPOSITION_SYNTAX, c.source(), VALUE, c.expression(), 1,
            CompositionParser.BLOCK_EXPECTED, "'" + c.expression() + "'"));
        continue;
      }
      collectUses(combination, c.expression(), uses);
      Resolver r = new Resolver(c, declared, byName, planned);
      CompositionPlan.Block root = r.block(combination, 1, null);
      if (r.failed || root == null) {
        continue;
      }
      List<String> sites = r.sameSites(root);
      if (sites == null || !r.checkWidths(root, planned)) {
        continue;
      }
      collectFused(root, fused);
      blocks.add(new CompositionPlan.Resolved(c, root, sites));
    }
    uses.forEach((name, where) -> {
      if (where.size() > 1) {
        Object source = spec.compositions().stream().filter(c -> c.expression().equals(where.get(1))).findFirst()
            .map(Composition::source).orElse(null);
        errors.add(Diagnostic.of(ErrorCode.COMPOSITION_NAME_REUSED, source, VALUE, name, where.size(), where));
      }
    });
    Set<String> frozen = new TreeSet<>(fused);
    for (String t : spec.train()) {
      if (!declared.contains(t)) {
        errors.add(Diagnostic.of(ErrorCode.TRAIN_NAME_INVALID, spec.source(), TRAIN, t,
            "but no adapter is declared with that name", declared));
      } else if (fused.contains(t)) {
        errors.add(Diagnostic.of(ErrorCode.TRAIN_NAME_INVALID, spec.source(), TRAIN, t,
            "but it is under a fuse block, whose adapters stay frozen (only the fusion trains)", declared));
      }
    }
    if (!spec.train().isEmpty()) {
      declared.stream().filter(n -> !spec.train().contains(n)).forEach(frozen::add);
    }
    return new CompositionPlan(blocks, frozen);
  }

  private static void collectUses(CompositionBlock b, String expression, Map<String, List<String>> uses) {
    if (b instanceof AdapterRef r) {
      uses.computeIfAbsent(r.name(), k -> new ArrayList<>()).add(expression);
    } else {
      ((Combination) b).members().forEach(m -> collectUses(m.block(), expression, uses));
    }
  }

  private static void collectFused(CompositionPlan.Part p, Set<String> fused) {
    if (p instanceof CompositionPlan.Block b) {
      if (b.operator() == Operator.FUSE) {
        CompositionPlan.leaves(b).forEach(l -> fused.add(l.adapter().spec().name()));
      } else {
        b.members().forEach(m -> collectFused(m, fused));
      }
    }
  }

  /** Resolves one composition's tree, reporting on its declaration. */
  private final class Resolver {
    private final Composition c;
    private final Set<String> declared;
    private final Map<String, Integer> byName;
    private final List<PlannedAdapter> planned;
    /** An error was reported, or a member's declaration has errors of its own: nothing to place. */
    boolean failed;

    Resolver(Composition c, Set<String> declared, Map<String, Integer> byName, List<PlannedAdapter> planned) {
      this.c = c;
      this.declared = declared;
      this.byName = byName;
      this.planned = planned;
    }

    private void error(ErrorCode code, Object... args) {
      errors.add(Diagnostic.of(code, c.source(), VALUE, args));
      failed = true;
    }

    /** A block at nesting depth {@code depth} (1: the composition itself) inside {@code parent}. */
    CompositionPlan.@Nullable Block block(Combination b, int depth, @Nullable Operator parent) {
      if (b.members().size() < 2) {
        error(ErrorCode.COMPOSITION_TOO_FEW, c.expression(), b, b.members().size());
      }
      List<CompositionPlan.Part> parts = new ArrayList<>();
      List<Double> weights = new ArrayList<>();
      for (Member m : b.members()) {
        CompositionPlan.Part part = null;
        if (m.block() instanceof Combination inner) {
          if (depth >= 2) {
            error(ErrorCode.COMPOSITION_NESTING, c.expression(), "blocks nest at most two deep (a block of blocks of"
                + " adapter names), but " + inner + " is inside " + b + " inside another block");
            continue;
          }
          if (!mayHold(b.operator(), inner.operator())) {
            error(ErrorCode.COMPOSITION_NESTING, c.expression(), b.operator().keyword() + " may hold "
                + holds(b.operator()) + ", but it holds " + inner);
            continue;
          }
          part = block(inner, depth + 1, b.operator());
        } else {
          part = leaf(((AdapterRef) m.block()).name());
        }
        if (part != null) {
          parts.add(part);
        }
        if (m.weight() != null) {
          weights.add(m.weight());
        }
      }
      checkWeights(b, weights);
      if (failed) {
        return null;
      }
      String id = b.operator().keyword() + "_" + CompositionPlan.leaves(
          new CompositionPlan.Block(b.operator(), parts, List.of(), "")).stream()
          .map(l -> l.adapter().spec().name()).collect(Collectors.joining("_"));
      return new CompositionPlan.Block(b.operator(), parts, weights, id);
    }

    private void checkWeights(Combination b, List<Double> weights) {
      Operator op = b.operator();
      if (op != Operator.AVERAGE && op != Operator.SPLIT) {
        if (!weights.isEmpty()) {
          error(ErrorCode.COMPOSITION_WEIGHTS_INVALID, c.expression(), op.keyword() + " takes no weights (only average"
              + " takes weights and split takes widths), but " + b + " gives " + weights);
        }
        return;
      }
      if (op == Operator.AVERAGE) {
        if (weights.isEmpty()) {
          return;
        }
        if (weights.size() != b.members().size()) {
          error(ErrorCode.COMPOSITION_WEIGHTS_INVALID, c.expression(), "average takes a weight for every member or"
              + " for none (learned), but " + b + " gives " + weights.size() + " for " + b.members().size() + " members");
        } else {
          double sum = weights.stream().mapToDouble(Double::doubleValue).sum();
          if (weights.stream().anyMatch(w -> !(w >= 0)) || Math.abs(sum - 1) > WEIGHT_SUM_TOLERANCE) {
            error(ErrorCode.COMPOSITION_WEIGHTS_INVALID, c.expression(), "average weights must be at least 0 and"
                + " sum to 1, but " + b + " has weights " + weights + " summing to " + sum);
          }
        }
        return;
      }
      if (weights.size() != b.members().size()
          || weights.stream().anyMatch(w -> !(w >= 1) || w != Math.rint(w))) {
        error(ErrorCode.COMPOSITION_WEIGHTS_INVALID, c.expression(), "split takes a positive whole width for every"
            + " member (split(a: 192, b: 192)), but " + b + " gives " + weights);
      }
    }

    private CompositionPlan.@Nullable Leaf leaf(String name) {
      if (!declared.contains(name)) {
        error(ErrorCode.COMPOSITION_UNKNOWN_ADAPTER, c.expression(), name, declared);
        return null;
      }
      Integer index = byName.get(name);
      if (index == null) {
        failed = true; // its declaration has errors, reported already
        return null;
      }
      PlannedAdapter a = planned.get(index);
      if (!(a.kind() instanceof ComposableKind k)) {
        error(ErrorCode.COMPOSITION_NOT_COMPOSABLE, c.expression(), name,
            "is " + a.kind().displayName() + ", which does not act on a linear layer's output");
        return null;
      }
      if (!k.composable(a.spec())) {
        error(ErrorCode.COMPOSITION_NOT_COMPOSABLE, c.expression(), name, "is " + k.whyPlacedAlone(a.spec()));
        return null;
      }
      return new CompositionPlan.Leaf(index, a, k);
    }

    /** The host nodes every leaf is placed on, in graph order; null (reported) when they differ. */
    @Nullable List<String> sameSites(CompositionPlan.Block root) {
      List<CompositionPlan.Leaf> leaves = CompositionPlan.leaves(root);
      List<String> first = leaves.get(0).adapter().sites().stream().map(Site::node).toList();
      for (CompositionPlan.Leaf l : leaves.subList(1, leaves.size())) {
        List<String> nodes = l.adapter().sites().stream().map(Site::node).toList();
        if (!new TreeSet<>(nodes).equals(new TreeSet<>(first))) {
          error(ErrorCode.COMPOSITION_SITES_DIFFER, c.expression(), leaves.get(0).adapter().spec().name(), first,
              l.adapter().spec().name(), nodes);
          return null;
        }
      }
      return first;
    }

    /** Split widths sum to the width of the value they cut at every site; false (reported) otherwise. */
    boolean checkWidths(CompositionPlan.Block root, List<PlannedAdapter> planned) {
      Site site = CompositionPlan.leaves(root).get(0).adapter().sites().get(0);
      return checkWidths(root, ComposableKind.siteWidth(site));
    }

    private boolean checkWidths(CompositionPlan.Block b, long width) {
      if (b.operator() == Operator.SPLIT) {
        long sum = b.weights().stream().mapToLong(Double::longValue).sum();
        if (sum != width) {
          error(ErrorCode.COMPOSITION_WEIGHTS_INVALID, c.expression(), "split widths must sum to the width of the"
              + " value they cut, " + width + ", but " + b.weights().stream().map(Double::longValue).toList()
              + " sum to " + sum);
          return false;
        }
      }
      for (int i = 0; i < b.members().size(); i++) {
        if (b.members().get(i) instanceof CompositionPlan.Block inner
            && !checkWidths(inner, b.operator() == Operator.SPLIT ? b.weights().get(i).longValue() : width)) {
          return false;
        }
      }
      return true;
    }
  }

  /** Whether a block of {@code outer} may hold a block of {@code inner}. */
  static boolean mayHold(Operator outer, Operator inner) {
    return switch (outer) {
      case STACK -> true;
      case PARALLEL, AVERAGE, SPLIT -> inner == Operator.STACK;
      case FUSE -> false;
    };
  }

  private static String holds(Operator outer) {
    return switch (outer) {
      case STACK -> "adapter names and any block";
      case PARALLEL, AVERAGE, SPLIT -> "adapter names and stack blocks";
      case FUSE -> "adapter names only";
    };
  }
}
