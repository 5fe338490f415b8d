package dev.graft.compiler.kinds.mixture;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SpanSite;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

import static dev.graft.compiler.ir.Node.attr;

/**
 * SEMA's mixture of adapters (Wang et al., "Self-Expansion of Pre-trained Models with Mixture of
 * Adapters for Continual Learning", CVPR 2025): beside a layer's feed-forward block, from its input
 * x to its output h, a pool of P parallel adapters mixed by a softmax router, {@code h' = h + Σ_i
 * g_i(x) · up_i(relu(down_i(x)))} with {@code g = softmax(x·[r_0 … r_{P-1}])}. Each adapter has
 * down {@code [in, in/reduction]} (kaiming-uniform) and up {@code [in/reduction, out]} (zero), each
 * with a zero bias, and its own router column {@code r_i [in, 1]} (zero: a new adapter starts with
 * an equal share). A pool of one has no router (its gate is 1).
 *
 * <p>{@code poolPerLayer} gives each selected layer its pool size (in ascending layer order; empty:
 * one adapter per layer, SEMA's first task); {@code frozenPerLayer} how many of each pool's first
 * adapters (with their router columns) are frozen: fed, never updated, as SEMA freezes the adapters of
 * earlier tasks. Freezing is explicit, so a pool that is all frozen is allowed (the detection found
 * nothing new there). The continual-learning loop that grows the pools is {@code dev.graft.dsl.continual.Sema}.
 *
 * <p>Parameters at a site: {@code <module>.sema.<i>.down.weight}, {@code .down.bias}, {@code
 * .up.weight}, {@code .up.bias}, {@code .router} — names that do not change when the pool grows, so
 * the loop loads the earlier adapters' values by name. Saved (frozen ones too, so a folder holds the
 * whole pool) as is under {@code base_model.model.<module>.sema.<i>.…}. Each down projection records
 * the site's input x as its manifest {@code site_input}, which the loop's descriptors read.
 */
public final class SemaKind implements ComposableKind {
  public static final int MAX_POOL = 64;
  static final String NAME = "sema";

  @Override
  public String id() {
    return "sema";
  }

  @Override
  public String displayName() {
    return "SEMA mixture of adapters";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Sema";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("reduction", 16, 1, 65536,
            "reduction factor: each adapter has max(1, floor(size / reduction)) units"),
        AdapterOption.integers("poolPerLayer", 1, MAX_POOL,
            "adapters in the pool of each selected layer, in ascending layer order; empty: one per layer"),
        AdapterOption.integers("frozenPerLayer", 0, MAX_POOL,
            "frozen leading adapters of each selected layer's pool, in ascending layer order; empty: none"));
  }

  @Override
  public String siteDescription() {
    return "feed-forward span";
  }

  @Override
  public List<SpanSite> candidates(Graph graph) {
    return SpanSite.find(graph);
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> errors = new ArrayList<>();
    List<Integer> pool = ints(spec, "poolPerLayer");
    List<Integer> frozen = ints(spec, "frozenPerLayer");
    if (pool.isEmpty() && frozen.isEmpty()) {
      return errors;
    }
    for (Site s : sites) {
      if (s.layer().isEmpty()) {
        errors.add(Diagnostic.of(ErrorCode.SEMA_SITE_WITHOUT_LAYER, spec.source(), "poolPerLayer", displayName(),
            s.node()));
        return errors;
      }
    }
    List<Integer> layers = layersOf(sites);
    for (var option : List.of("poolPerLayer", "frozenPerLayer")) {
      List<Integer> values = ints(spec, option);
      if (!values.isEmpty() && values.size() != layers.size()) {
        errors.add(Diagnostic.of(ErrorCode.SEMA_PER_LAYER_LENGTH, spec.source(), option, displayName(), option,
            values.size(), layers.size(), layers));
      }
    }
    if (!errors.isEmpty()) {
      return errors;
    }
    for (int i = 0; i < layers.size(); i++) {
      int p = pool.isEmpty() ? 1 : pool.get(i);
      int f = frozen.isEmpty() ? 0 : frozen.get(i);
      if (f > p) {
        errors.add(Diagnostic.of(ErrorCode.SEMA_FROZEN_EXCEEDS_POOL, spec.source(), "frozenPerLayer", displayName(),
            f, layers.get(i), p));
      }
    }
    return errors;
  }

  @SuppressWarnings("unchecked")
  private static List<Integer> ints(AdapterSpec spec, String option) {
    return (List<Integer>) spec.options().getOrDefault(option, List.of());
  }

  private static List<Integer> layersOf(List<? extends Site> sites) {
    TreeSet<Integer> layers = new TreeSet<>();
    sites.forEach(s -> s.layer().ifPresent(layers::add));
    return List.copyOf(layers);
  }

  /** The entry of {@code option} for {@code site}'s layer among the spans the declaration selects, else {@code fallback}. */
  private static int perLayer(AdapterSpec spec, String option, SpanSite site, Graph graph, int fallback) {
    List<Integer> values = ints(spec, option);
    if (values.isEmpty()) {
      return fallback;
    }
    List<SpanSite> selected = SpanSite.find(graph).stream()
        .filter(s -> spec.target().isEmpty() || java.util.regex.Pattern.compile(spec.target()).matcher(s.node()).matches())
        .filter(s -> spec.layers().isEmpty() || (s.layer().isPresent() && spec.layers().contains(s.layer().getAsInt())))
        .toList();
    List<Integer> layers = layersOf(selected);
    int index = layers.indexOf(site.layer().orElseThrow());
    if (index < 0 || layers.size() != values.size()) {
      throw new IllegalStateException(option + " " + values + " does not fit the selected layers " + layers
          + " at " + site.node());
    }
    return values.get(index);
  }

  @Override
  public String apply(AdapterSpec spec, Site s, String value, long width, Placement placement) {
    if (!(s instanceof SpanSite site)) {
      throw new IllegalArgumentException(displayName() + " reads a feed-forward span's input; got site " + s);
    }
    Graph g = placement.graph();
    int pool = perLayer(spec, "poolPerLayer", site, g, 1);
    int frozen = perLayer(spec, "frozenPerLayer", site, g, 0);
    long in = site.in();
    long w = Math.max(1, in / spec.intOption("reduction"));
    String base = "/" + site.modulePath().replace('.', '/') + "/" + NAME;
    String x = site.input();
    String logits = null;
    List<String> branches = new ArrayList<>();
    for (int i = 0; i < pool; i++) {
      String name = NAME + "." + i;
      String b = base + "/" + i;
      boolean freeze = i < frozen;
      String key = Placement.PEFT_PREFIX + site.modulePath() + "." + name + ".";
      String downW = frozen(placement.parameter(site, name + ".down.weight", in, w).init(Init.KAIMING_UNIFORM, in).siteInput(x).save(key + "down.weight"), freeze).add();
      String downB = frozen(placement.parameter(site, name + ".down.bias", w).init(Init.ZEROS, 0).noDecay().save(key + "down.bias"), freeze).add();
      String upW = frozen(placement.parameter(site, name + ".up.weight", w, width).init(Init.ZEROS, 0).save(key + "up.weight"), freeze).add();
      String upB = frozen(placement.parameter(site, name + ".up.bias", width).init(Init.ZEROS, 0).noDecay().save(key + "up.bias"), freeze).add();
      String d = g.op(b + "/down/Add", "Add", List.of(g.op(b + "/down/MatMul", "MatMul", List.of(x, downW)), downB));
      String r = g.op(b + "/Relu", "Relu", List.of(d));
      branches.add(g.op(b + "/up/Add", "Add", List.of(g.op(b + "/up/MatMul", "MatMul", List.of(r, upW)), upB)));
      if (pool > 1) {
        String column = frozen(placement.parameter(site, name + ".router", in, 1).init(Init.ZEROS, 0).save(key + "router"), freeze).add();
        // logit i placed in column i of [.., P] by the constant one-hot row e_i [1, P]
        String placed = g.op(b + "/router/place", "MatMul", List.of(g.op(b + "/router/MatMul", "MatMul",
            List.of(x, column)), g.constant(b + "/router/e", oneHot(placement.elemType(), pool, i, true))));
        logits = logits == null ? placed : g.op(b + "/router/Add", "Add", List.of(logits, placed));
      }
    }
    String mixed;
    if (pool == 1) {
      mixed = branches.get(0);
    } else {
      String gates = g.op(base + "/router/Softmax", "Softmax", List.of(logits), attr("axis", -1L));
      mixed = null;
      for (int i = 0; i < pool; i++) {
        String b = base + "/" + i;
        String gate = g.op(b + "/gate", "MatMul", List.of(gates,
            g.constant(b + "/gate/e", oneHot(placement.elemType(), pool, i, false))));
        String weighted = g.op(b + "/gate/Mul", "Mul", List.of(branches.get(i), gate));
        mixed = mixed == null ? weighted : g.op(b + "/mix/Add", "Add", List.of(mixed, weighted));
      }
    }
    return g.op(base + "/Add", "Add", List.of(value, mixed));
  }

  private static Placement.ParameterBuilder frozen(Placement.ParameterBuilder p, boolean freeze) {
    return freeze ? p.frozen() : p;
  }

  /** e_i as a row {@code [1, P]} ({@code row}) or a column {@code [P, 1]}. */
  private static dev.graft.spec.onnx.Onnx.TensorProto oneHot(int elemType, int pool, int i, boolean row) {
    double[] v = new double[pool];
    v[i] = 1;
    return Tensors.floats("e", elemType, row ? List.of(1L, (long) pool) : List.of((long) pool, 1L), v);
  }
}
