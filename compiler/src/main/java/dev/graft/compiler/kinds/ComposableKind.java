package dev.graft.compiler.kinds;

import dev.graft.compiler.kinds.bottleneck.Bottlenecks;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;

/**
 * An adapter kind that acts on a linear layer's output value as a function {@code v ↦ f(v)}: what
 * composition blocks (Stack, Parallel, Average, Fuse, Split) combine, and what a named adapter's
 * gate switches off (an adapter switched off is the identity). Its sites are {@link LinearSite}s
 * or {@link OutputSite}s (or the {@link SpanSite} of a feed-forward block, whose value is its last
 * linear layer's output); either way the value is the layer's output with its bias ({@link
 * #siteValue}).
 *
 * <p>A kind implements {@link #apply}; placing it alone ({@link #place}) applies it at each site
 * and makes every host consumer of the value read the result. A kind may override {@code place}
 * where it has a cheaper standalone form (LoRA adds its update before the bias), as long as the
 * function is the same.
 */
public interface ComposableKind extends AdapterKind {
  /**
   * Adds the adapter at one site as a function of {@code value} and returns the adapted value
   * (same shape). Adds parameters and nodes; never rewires existing nodes.
   *
   * @param site one of the declaration's sites
   * @param value {@code [.., width]}: the site's layer output with bias ({@link #siteValue}), or what
   *     an enclosing composition block made of it
   * @param width the last dimension of {@code value}: the layer's output width ({@link
   *     #siteWidth}), or a part of it under a Split block; parameters that act on the value are
   *     sized by it
   */
  String apply(AdapterSpec spec, Site site, String value, long width, Placement placement);

  /**
   * Whether this declaration (options checked) acts on the value as a function {@link #apply}
   * can add; a kind whose options may give a form that cannot (LoRA with DoRA rescales the whole
   * output) says no for those, and such a declaration is placed alone ({@link #place}), ungated.
   */
  default boolean composable(AdapterSpec spec) {
    return true;
  }

  /**
   * Why a declaration {@link #composable} rejects cannot be in a composition block, for the
   * error: after "'name' is …".
   */
  default String whyPlacedAlone(AdapterSpec spec) {
    return displayName() + " with options " + spec.options() + ", a form that is placed alone";
  }

  /** Applies the adapter at every site; every host consumer of the site's value reads the result. */
  @Override
  default void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    Graph g = placement.graph();
    for (Site s : sites) {
      String v = siteValue(g, s);
      int first = g.nodes().size();
      String out = apply(spec, s, v, siteWidth(s), placement);
      Bottlenecks.rewire(g, v, out, first);
    }
  }

  /** The value a composable adapter acts on at {@code site}: its linear layer's output, bias included. */
  static String siteValue(Graph graph, Site site) {
    if (site instanceof OutputSite o) {
      return o.value();
    } else if (site instanceof SpanSite span) {
      return span.output();
    } else if (site instanceof LinearSite l) {
      return l.biasedOutput(graph);
    }
    throw new IllegalArgumentException("a composable adapter's site is a linear layer or its output, got " + site);
  }

  /** The width of {@link #siteValue}: the layer's output width. */
  static long siteWidth(Site site) {
    if (site instanceof OutputSite o) {
      return o.size();
    } else if (site instanceof SpanSite span) {
      return span.out();
    } else if (site instanceof LinearSite l) {
      return l.out();
    }
    throw new IllegalArgumentException("a composable adapter's site is a linear layer or its output, got " + site);
  }
}
