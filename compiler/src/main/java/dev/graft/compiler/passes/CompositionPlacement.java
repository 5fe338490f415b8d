package dev.graft.compiler.passes;

import dev.graft.compiler.plan.CompositionPlan;
import dev.graft.compiler.plan.PlannedAdapter;

import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;

/**
 * Composition pass (part of placement, after the declarations placed alone): places the named
 * composable adapters. At each site a composition block combines at, the block is built as a
 * function of the site value v ({@link ComposableKind#siteValue}, {@code [.., width]}) and every
 * host consumer of v reads its result; a named composable adapter in no block is placed alone the
 * same way. Every named adapter is gated: {@code Where(gate.<name>, f(v), v)}, so an adapter
 * switched off is exactly the identity, inside a block as well.
 *
 * <p>Blocks, for members {@code c_i}:
 *
 * <ul>
 *   <li>stack: {@code c_k(…c_1(v))};
 *   <li>parallel: {@code v + Σ (c_i(v) − v)};
 *   <li>average: {@code v + Σ w_i (c_i(v) − v)}, w fixed or {@code softmax(θ)} with θ {@code [k]} per
 *       site ({@code <module>.<block>.weights}, zeros, no weight decay);
 *   <li>fuse (AdapterFusion, AdapterHub's {@code BertFusion}): {@code u_i = c_i(v) − v}, {@code q =
 *       v·Wq + bq}, {@code k_i = u_i·Wk}, {@code s_i = q·k_i / T} per token, {@code p =
 *       softmax(s)} over the members, {@code v + Σ p_i (u_i·Wv)}; Wq, Wk {@code [width, width]}
 *       normal(0, 0.02), bq zero, Wv identity (1e-6 off the diagonal), T = 1. AdapterHub's key
 *       layer also has a bias; it adds {@code q·bk} to every member's score, which the softmax
 *       cancels, so it never changes the output nor gets a gradient and is left out;
 *   <li>split: v's last axis cut into consecutive parts of the given widths, member i applied to
 *       part i (sized by its width), the results concatenated.
 * </ul>
 *
 * Needs: the validated plan with its compositions. Guarantees: every named composable adapter
 * placed once with its parameters tagged with its declaration (frozen where the plan says), the
 * blocks' own parameters tagged with no declaration.
 */
public final class CompositionPlacement {
  /** AdapterFusion's attention temperature (AdapterHub's default, {@code temperature = False}). */
  static final double FUSION_TEMPERATURE = 1.0;
  /** Off-diagonal value of the fusion's initial value matrix (AdapterHub's {@code value_initialized}). */
  static final double FUSION_VALUE_OFF_DIAGONAL = 1e-6;
  /** Standard deviation of the fusion's query and key weights (AdapterHub's {@code init_bert_weights}). */
  static final double FUSION_INIT_STD = 0.02;

  private final Graph g;
  private final List<PlannedAdapter> adapters;
  private final CompositionPlan plan;
  private final Placement placement;
  private int rank;

  private CompositionPlacement(Graph g, List<PlannedAdapter> adapters, CompositionPlan plan, Placement placement) {
    this.g = g;
    this.adapters = adapters;
    this.plan = plan;
    this.placement = placement;
  }

  /** Whether {@code a} is placed by this pass (a named adapter of a composable form). */
  public static boolean placesHere(PlannedAdapter a) {
    return a.spec().isNamed() && a.kind() instanceof ComposableKind k && k.composable(a.spec());
  }

  static void place(Graph graph, List<PlannedAdapter> adapters, CompositionPlan plan, Placement placement) {
    CompositionPlacement p = new CompositionPlacement(graph, adapters, plan, placement);
    for (CompositionPlan.Resolved r : plan.blocks()) {
      CompositionPlan.Leaf first = CompositionPlan.leaves(r.root()).get(0);
      for (String node : r.siteNodes()) {
        p.atSite(siteAt(first.adapter(), node), r.root());
      }
    }
    for (int i = 0; i < adapters.size(); i++) {
      PlannedAdapter a = adapters.get(i);
      if (placesHere(a) && !plan.composes(a.spec().name())) {
        CompositionPlan.Leaf leaf = new CompositionPlan.Leaf(i, a, (ComposableKind) a.kind());
        for (Site s : a.sites()) {
          p.atSite(s, leaf);
        }
      }
    }
  }

  /** Builds {@code part} at {@code site}'s value and makes the host read the result. */
  private void atSite(Site site, CompositionPlan.Part part) {
    String v = ComposableKind.siteValue(g, site);
    rank = g.typeOrThrow(v).rank();
    int first = g.nodes().size();
    String out = build(part, site.node(), v, ComposableKind.siteWidth(site));
    List<Node> added = new ArrayList<>(g.nodes().subList(first, g.nodes().size()));
    g.replaceUses(v, out, added);
  }

  private static Site siteAt(PlannedAdapter a, String node) {
    return a.sites().stream().filter(s -> s.node().equals(node)).findFirst().orElseThrow(
        () -> new IllegalStateException(a.spec().name() + " has no site at " + node));
  }

  private String build(CompositionPlan.Part part, String node, String v, long width) {
    if (part instanceof CompositionPlan.Leaf l) {
      String name = l.adapter().spec().name();
      placement.declaration(l.index(), name, plan.frozen().contains(name));
      placement.quantize(l.adapter().spec().quantizeBits());
      Site site = siteAt(l.adapter(), node);
      String adapted = l.kind().apply(l.adapter().spec(), site, v, width, placement);
      return g.op(base(site) + "/" + name + "/gate", "Where", List.of(placement.gate(name), adapted, v));
    }
    CompositionPlan.Block b = (CompositionPlan.Block) part;
    Site site = siteAt(CompositionPlan.leaves(b).get(0).adapter(), node);
    String base = base(site) + "/" + b.id();
    return switch (b.operator()) {
      case STACK -> {
        String x = v;
        for (CompositionPlan.Part m : b.members()) {
          x = build(m, node, x, width);
        }
        yield x;
      }
      case PARALLEL -> g.op(base + "/Add", "Add", List.of(v, sum(base, updates(b, node, v, width, base))));
      case AVERAGE -> average(b, site, node, v, width, base);
      case FUSE -> fuse(b, site, node, v, width, base);
      case SPLIT -> split(b, node, v, base);
    };
  }

  private static String base(Site site) {
    return "/" + site.modulePath().replace('.', '/');
  }

  /** {@code c_i(v) − v} for every member. */
  private List<String> updates(CompositionPlan.Block b, String node, String v, long width, String base) {
    List<String> out = new ArrayList<>();
    for (CompositionPlan.Part m : b.members()) {
      out.add(g.op(base + "/Sub", "Sub", List.of(build(m, node, v, width), v)));
    }
    return out;
  }

  private String sum(String base, List<String> values) {
    String s = values.get(0);
    for (String x : values.subList(1, values.size())) {
      s = g.op(base + "/Sum", "Add", List.of(s, x));
    }
    return s;
  }

  private String average(CompositionPlan.Block b, Site site, String node, String v, long width, String base) {
    List<String> d = updates(b, node, v, width, base);
    List<String> weighted = new ArrayList<>();
    if (!b.weights().isEmpty()) {
      for (int i = 0; i < d.size(); i++) {
        weighted.add(g.op(base + "/Mul", "Mul", List.of(d.get(i), placement.scalar(base + "/weight", b.weights().get(i)))));
      }
    } else {
      placement.declaration(-1, "", false);
      String theta = placement.parameter(site, b.id() + ".weights", d.size()).init(Init.ZEROS, 0).noDecay()
          .save(Placement.peftKey(site, b.id() + ".weights")).add();
      String w = g.op(base + "/Softmax", "Softmax", List.of(theta), Node.attr("axis", 0L));
      for (int i = 0; i < d.size(); i++) {
        String wi = g.op(base + "/Gather", "Gather", List.of(w,
            g.constant(base + "/index", Tensors.longs("index", List.of(), List.of((long) i)))), Node.attr("axis", 0L));
        weighted.add(g.op(base + "/Mul", "Mul", List.of(d.get(i), wi)));
      }
    }
    return g.op(base + "/Add", "Add", List.of(v, sum(base, weighted)));
  }

  private String fuse(CompositionPlan.Block b, Site site, String node, String v, long width, String base) {
    List<String> u = updates(b, node, v, width, base);
    placement.declaration(-1, "", false);
    String key = "adapter_fusion_layer." + b.id() + ".";
    String wq = placement.parameter(site, key + "query.weight", width, width).init(Init.NORMAL, FUSION_INIT_STD)
        .saveTransposed(Placement.peftKey(site, key + "query.weight")).add();
    String bq = placement.parameter(site, key + "query.bias", width).init(Init.ZEROS, 0).noDecay()
        .save(Placement.peftKey(site, key + "query.bias")).add();
    String wk = placement.parameter(site, key + "key.weight", width, width).init(Init.NORMAL, FUSION_INIT_STD)
        .saveTransposed(Placement.peftKey(site, key + "key.weight")).add();
    String wv = placement.parameter(site, key + "value.weight", width, width)
        .init(Init.IDENTITY, FUSION_VALUE_OFF_DIAGONAL).saveTransposed(Placement.peftKey(site, key + "value.weight")).add();
    long last = rank - 1;
    String q = g.op(base + "/query/Add", "Add", List.of(g.op(base + "/query/MatMul", "MatMul", List.of(v, wq)), bq));
    List<String> scores = new ArrayList<>();
    List<String> values = new ArrayList<>();
    for (String ui : u) {
      String k = g.op(base + "/key/MatMul", "MatMul", List.of(ui, wk));
      String s = g.op(base + "/scores/ReduceSum", "ReduceSum", List.of(g.op(base + "/scores/Mul", "Mul", List.of(q, k)),
          g.longs(base + "/scores/axes", List.of(last))), Node.attr("keepdims", 1L));
      scores.add(FUSION_TEMPERATURE == 1 ? s
          : g.op(base + "/scores/Div", "Div", List.of(s, placement.scalar(base + "/temperature", FUSION_TEMPERATURE))));
      values.add(g.op(base + "/value/MatMul", "MatMul", List.of(ui, wv)));
    }
    String p = g.op(base + "/Softmax", "Softmax", List.of(g.op(base + "/scores/Concat", "Concat", scores,
        Node.attr("axis", last))), Node.attr("axis", last));
    List<String> weighted = new ArrayList<>();
    for (int i = 0; i < values.size(); i++) {
      String pi = g.op(base + "/probs/Slice", "Slice", List.of(p, g.longs(base + "/probs/start", List.of((long) i)),
          g.longs(base + "/probs/end", List.of((long) i + 1)), g.longs(base + "/probs/axes", List.of(last))));
      weighted.add(g.op(base + "/context/Mul", "Mul", List.of(values.get(i), pi)));
    }
    return g.op(base + "/Add", "Add", List.of(v, sum(base + "/context", weighted)));
  }

  private String split(CompositionPlan.Block b, String node, String v, String base) {
    long last = rank - 1;
    List<String> parts = new ArrayList<>();
    long start = 0;
    for (int i = 0; i < b.members().size(); i++) {
      long w = b.weights().get(i).longValue();
      String part = g.op(base + "/Slice", "Slice", List.of(v, g.longs(base + "/start", List.of(start)),
          g.longs(base + "/end", List.of(start + w)), g.longs(base + "/axes", List.of(last))));
      parts.add(build(b.members().get(i), node, part, w));
      start += w;
    }
    return g.op(base + "/Concat", "Concat", parts, Node.attr("axis", last));
  }

}
