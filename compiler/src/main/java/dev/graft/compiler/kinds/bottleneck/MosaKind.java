package dev.graft.compiler.kinds.bottleneck;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.OutputSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.jspecify.annotations.Nullable;

/**
 * MoSA, a mixture of sparse adapters (Zhang et al., <i>MoSA: Mixture of Sparse Adapters for
 * Visual Efficient Tuning</i>, arXiv 2312.02923, 2023): one sequential bottleneck {@code h' = h +
 * up(act(down(h)))} whose tensors named by {@code split} are split into {@code modules} disjoint
 * sparse modules by a fixed random partition ({@link #partition}, from {@code partitionSeed}):
 * each entry belongs to exactly one module, the modules of a tensor differ in size by at most one
 * entry. The default, {@code split = up}, is the reference implementation's recipe
 * ({@code Theia-4869/MoSA}, its scripts' {@code SHARE "down"} with {@code ADAPTER.BIAS}: only the
 * up projection's weight is split; the down projection and both biases train whole every step).
 *
 * <p>Each training step activates {@code active} of the modules, drawn from the step's seed
 * ({@link #activeModules}) combined with a per-site factor ({@link #siteFactor}): with {@code draw
 * = site}, the default, each site draws independently (as the reference's blocks each draw their
 * own expert); with {@code draw = step} every site of a step uses the same draw. The step reads
 * every split parameter as {@code θ ⊙ mask} (the entries
 * of inactive modules contribute nothing; with {@code rescale}, {@code θ ⊙ mask · modules/active},
 * as inverted dropout, which the reference does not do) and AdamW updates only the active entries
 * (the others and their moments are kept: the parameter's {@code update_mask}). The inference graph
 * reads the parameters whole: the merged adapter, the union of the modules (the reference's
 * {@code merge("add")} of expert copies that each hold only their own module), is the trained
 * tensors themselves, saved under the bottleneck's AdapterHub keys.
 */
public final class MosaKind implements ComposableKind {
  /** The kind's id. */
  public static final String ID = "mosa";
  /** The Lehmer generator's modulus and multiplier (MINSTD), as DyLoRA's drawn rank. */
  static final long MODULUS = 2_147_483_647L;
  static final long MULTIPLIER = 48_271L;
  /** The suffix of a parameter's per-step update mask (a bool value of the training graph). */
  public static final String MASK_SUFFIX = ".update_mask";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public String displayName() {
    return "MoSA";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Mosa";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.choice("config", "pfeiffer", List.of("pfeiffer", "houlsby"),
            "default sites: pfeiffer after each feed-forward output, houlsby after the attention output too"),
        Bottlenecks.reduction(16),
        Bottlenecks.nonlinearity("relu", Bottlenecks.NONLINEARITIES),
        Bottlenecks.initWeights(),
        AdapterOption.integer("modules", 4, 2, 64, "number of disjoint sparse modules the adapter's entries are split into"),
        AdapterOption.integer("active", 1, 1, 63, "modules trained each step, drawn from the step's seed (fewer than modules)"),
        AdapterOption.integer("partitionSeed", 0, 0, Integer.MAX_VALUE, "seed of the fixed random split into modules"),
        AdapterOption.choice("split", "up", SPLITS,
            "tensors split into modules: up (the reference's SHARE=down), down (SHARE=up), both weights (SHARE=none);"
            + " all: the weights and both biases; the others train whole every step"),
        AdapterOption.bool("rescale", false,
            "scale the active entries by modules/active in training (inverted dropout); the reference does not"),
        AdapterOption.choice("draw", "site", DRAWS,
            "site: each site draws its active modules independently (the reference's per-block draw);"
            + " step: one draw shared by every site of a step"));
  }

  /** The {@code draw} choices: a draw per site per step, or one per step shared by all sites. */
  static final List<String> DRAWS = List.of("site", "step");

  /** The {@code split} choices: which tensors are divided into modules. */
  static final List<String> SPLITS = List.of("up", "down", "both", "all");

  /** Whether {@code split} divides the tensor {@code role} ({@code down.weight}, {@code up.bias}, ...) into modules. */
  static boolean splits(String split, String role) {
    return switch (split) {
      case "up" -> role.equals("up.weight");
      case "down" -> role.equals("down.weight");
      case "both" -> role.endsWith(".weight");
      default -> true;
    };
  }

  @Override
  public String siteDescription() {
    return "linear output";
  }

  @Override
  public List<OutputSite> candidates(Graph graph) {
    return OutputSite.find(graph);
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return spec.stringOption("config").equals("houlsby") ? BottleneckKind.HOULSBY : BottleneckKind.PFEIFFER;
  }

  /** {@code active} must be below {@code modules} (all modules active would be a plain bottleneck). */
  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<String> problems = new ArrayList<>();
    int modules = spec.intOption("modules");
    int active = spec.intOption("active");
    if (active >= modules) {
      problems.add("active (" + active + ") must be less than modules (" + modules + "): with every module active each"
          + " step MoSA is a plain bottleneck");
    }
    return AdapterKind.optionsInvalid(this, spec, problems);
  }

  /**
   * The module of each entry of a parameter named {@code parameter} with {@code entries} entries
   * (row-major): a permutation of the entries drawn from {@code seed} and the parameter's name
   * (Fisher–Yates over {@link SplittableRandom}), the entry at permuted position i in module {@code
   * i mod modules}. Deterministic; every module gets {@code floor} or {@code ceil(entries / modules)}.
   */
  public static int[] partition(String parameter, int entries, int modules, long seed) {
    SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + parameter.hashCode());
    int[] order = new int[entries];
    for (int i = 0; i < entries; i++) {
      order[i] = i;
    }
    for (int i = entries - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    int[] module = new int[entries];
    for (int i = 0; i < entries; i++) {
      module[order[i]] = i % modules;
    }
    return module;
  }

  /**
   * The factor the step's seed is combined with at the site {@code modulePath} under {@code draw}:
   * 1 for {@code step} (every site draws alike), else a hash of the module path in 1..2³¹−2 (so
   * the sites of one step draw independently). The training graph and {@link #activeModules}
   * take it from here.
   */
  public static long siteFactor(String draw, String modulePath) {
    if (draw.equals("step")) {
      return 1;
    }
    // SplitMix64's finalizer over the path's String.hashCode (fixed by the Java language).
    long z = modulePath.hashCode() * 0x9E3779B97F4A7C15L;
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    z ^= z >>> 31;
    return Math.floorMod(z, MODULUS - 1) + 1;
  }

  /**
   * The modules a training step with per-step seed {@code seed} trains at a site of {@link
   * #siteFactor} {@code factor}: {@code x} = two Lehmer (MINSTD) steps from {@code
   * (floorMod(seed, 2³¹−2) + 1)·factor mod (2³¹−1)} (never 0), module i's key {@code h_i =
   * x·48271^(i+1) mod (2³¹−1)} (distinct for distinct i), and the {@code active} modules of
   * smallest key are active. The training graph computes exactly this with int64 ops.
   */
  public static boolean[] activeModules(long seed, int modules, int active, long factor) {
    if (factor < 1 || factor >= MODULUS) {
      throw new IllegalArgumentException("a site factor is in 1.." + (MODULUS - 1) + ", got " + factor);
    }
    long x = (Math.floorMod(seed, MODULUS - 1) + 1) * factor % MODULUS;
    x = x * MULTIPLIER % MODULUS;
    x = x * MULTIPLIER % MODULUS;
    long[] h = new long[modules];
    long c = 1;
    for (int i = 0; i < modules; i++) {
      c = c * MULTIPLIER % MODULUS;
      h[i] = x * c % MODULUS;
    }
    boolean[] on = new boolean[modules];
    for (int i = 0; i < modules; i++) {
      int rank = 0;
      for (int j = 0; j < modules; j++) {
        rank += h[j] < h[i] ? 1 : 0;
      }
      on[i] = rank < active;
    }
    return on;
  }

  @Override
  public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    Graph g = placement.graph();
    long w = Bottlenecks.width(width, spec);
    String keyBase = Placement.PEFT_PREFIX + site.modulePath() + ".adapters.default.";
    Placement.ParameterBuilder down = placement.parameter(site, "mosa.down.weight", width, w).exportRankAxis(1);
    Placement.ParameterBuilder up = placement.parameter(site, "mosa.up.weight", w, width).exportRankAxis(0);
    Bottlenecks.initialize(spec.stringOption("initWeights"), down, up, width);
    down.saveTransposed(keyBase + "adapter_down.0.weight");
    up.saveTransposed(keyBase + "adapter_up.weight");
    Placement.ParameterBuilder downBias = placement.parameter(site, "mosa.down.bias", w).exportRankAxis(0)
        .init(Init.ZEROS, 0).noDecay().save(keyBase + "adapter_down.0.bias");
    Placement.ParameterBuilder upBias = placement.parameter(site, "mosa.up.bias", width).init(Init.ZEROS, 0).noDecay()
        .save(keyBase + "adapter_up.bias");
    String base = "/" + site.modulePath().replace('.', '/') + "/mosa";
    @Nullable String active = placement.variant().trains()
        ? activeGraph(spec, placement, base, siteFactor(spec.stringOption("draw"), site.modulePath())) : null;
    String downW = sparse(spec, placement, down, "down.weight", base, active, width, w);
    String downB = sparse(spec, placement, downBias, "down.bias", base, active, w);
    String upW = sparse(spec, placement, up, "up.weight", base, active, w, width);
    String upB = sparse(spec, placement, upBias, "up.bias", base, active, width);
    String d = g.op(base + "/down/Add", "Add", List.of(g.op(base + "/down/MatMul", "MatMul", List.of(value, downW)), downB));
    String a = Bottlenecks.activation(placement, base, d, spec.stringOption("nonlinearity"));
    String update = g.op(base + "/up/Add", "Add", List.of(g.op(base + "/up/MatMul", "MatMul", List.of(a, upW)), upB));
    return g.op(base + "/Add", "Add", List.of(value, update));
  }

  /**
   * Adds the parameter; where {@code split} divides {@code role}, with its update mask {@code
   * <name>.update_mask}, and in the training graph returns {@code θ ⊙ mask} (the mask gathered from
   * the step's active modules by the entries' fixed modules; times {@code modules/active} with
   * {@code rescale}), elsewhere θ itself. A tensor not split is a plain parameter trained every step.
   */
  private static String sparse(AdapterSpec spec, Placement placement, Placement.ParameterBuilder builder, String role,
      String base, @Nullable String active, long... shape) {
    if (!splits(spec.stringOption("split"), role)) {
      return builder.add();
    }
    String mask = builder.name() + MASK_SUFFIX;
    String param = builder.updateMask(mask).add();
    if (active == null) {
      return param;
    }
    Graph g = placement.graph();
    long entries = 1;
    List<Long> dims = new ArrayList<>();
    for (long d : shape) {
      entries *= d;
      dims.add(d);
    }
    int[] modules = partition(param, Math.toIntExact(entries), spec.intOption("modules"), spec.intOption("partitionSeed"));
    List<Long> assigned = new ArrayList<>(modules.length);
    for (int m : modules) {
      assigned.add((long) m);
    }
    String p = base + "/" + param.substring(param.lastIndexOf(".mosa.") + 6).replace('.', '_');
    String module = g.constant(p + "/module", Tensors.longs(p + "/module", dims, assigned));
    g.opTo(mask, p + "/Gather_mask", "Gather", List.of(active, module), Node.attr("axis", 0L));
    String kept = g.op(p + "/Cast_mask", "Cast", List.of(mask), Node.attr("to", (long) placement.elemType()));
    if (spec.boolOption("rescale")) {
      kept = g.op(p + "/Mul_scale", "Mul", List.of(kept, placement.scalar(p + "/modules_per_active",
          (double) spec.intOption("modules") / spec.intOption("active"))));
    }
    return g.op(p + "/Mul_mask", "Mul", List.of(param, kept));
  }

  /** The graph of {@link #activeModules} at {@code factor}: a bool [modules], true for the step's active modules. */
  private static String activeGraph(AdapterSpec spec, Placement placement, String base, long factor) {
    Graph g = placement.graph();
    int n = spec.intOption("modules");
    String p = base + "/modules";
    String modulus = int64(g, p + "/modulus", MODULUS);
    String multiplier = int64(g, p + "/multiplier", MULTIPLIER);
    List<Long> factors = new ArrayList<>();
    long c = 1;
    for (int i = 0; i < n; i++) {
      c = c * MULTIPLIER % MODULUS;
      factors.add(c);
    }
    String h = g.op(p + "/Add_one", "Add", List.of(g.op(p + "/Mod_seed", "Mod",
        List.of(placement.seed(), int64(g, p + "/modulus_minus_one", MODULUS - 1))), int64(g, p + "/one", 1)));
    h = g.op(p + "/Mod_site", "Mod", List.of(g.op(p + "/Mul_site", "Mul", List.of(h, int64(g, p + "/site_factor", factor))),
        modulus));
    for (int i = 0; i < 2; i++) {
      h = g.op(p + "/Mod_step", "Mod", List.of(g.op(p + "/Mul_step", "Mul", List.of(h, multiplier)), modulus));
    }
    h = g.op(p + "/Mod_keys", "Mod", List.of(g.op(p + "/Mul_keys", "Mul", List.of(h, g.longs(p + "/factors", factors))),
        modulus));
    // rank_i = #{j : h_j < h_i}: Less of the row [1, n] against the column [n, 1], summed over j.
    String row = g.op(p + "/Reshape_row", "Reshape", List.of(h, g.longs(p + "/row_shape", List.of(1L, (long) n))));
    String column = g.op(p + "/Reshape_column", "Reshape", List.of(h, g.longs(p + "/column_shape", List.of((long) n, 1L))));
    String below = g.op(p + "/Cast_below", "Cast", List.of(g.op(p + "/Less_keys", "Less", List.of(row, column))),
        Node.attr("to", (long) TensorType.FLOAT));
    String rank = g.op(p + "/ReduceSum", "ReduceSum", List.of(below, g.longs(p + "/axes", List.of(1L))),
        Node.attr("keepdims", 0L));
    return g.op(p + "/Less_active", "Less", List.of(rank, g.scalar(p + "/active", TensorType.FLOAT, spec.intOption("active"))));
  }

  private static String int64(Graph g, String name, long value) {
    return g.constant(name, Tensors.longs(name, List.of(), List.of(value)));
  }
}
