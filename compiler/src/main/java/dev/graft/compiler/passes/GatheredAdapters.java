package dev.graft.compiler.passes;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.lora.LinearAdapters;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.GatheredRole;
import dev.graft.spec.manifest.GatheredTensor;
import dev.graft.spec.manifest.SiteUpdate;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * Gathered placement pass (the {@code GATHERED} variant): at every linear site of the graft, {@code
 * y' = y + g·(x·A_row)·B_row}, where {@code A_row} and {@code B_row} are the rows that the int64
 * input {@link #ADAPTER_INDEX} {@code [batch]} picks ({@code Gather} on axis 0) from the stacked
 * inputs {@code gathered/<module>/A} {@code [adapters, in, rank.<module>]} and {@code
 * gathered/<module>/B} {@code [adapters, rank.<module>, out]}, multiplied per row ({@code MatMul}
 * broadcasting over the batch); {@code g} is a Gemm's alpha, {@code x} transposed for a Gemm with
 * {@code transA=1}; where the kind changes the layer's bias (IA³), {@code gathered/<module>/bias}
 * {@code [adapters, out]} is added too. The factors are those the update graph outputs per adapter
 * ({@link SiteUpdates}: the LoRA family at its rank, other linear kinds a dense pair), so every
 * linear-site kind is served exactly. The stack size and each site's rank are symbolic: one graph
 * serves any number of adapters, each site's factors zero-padded to the largest rank served.
 *
 * <p>Needs: a fresh typed import of the host, the validated plan and the update graph's records.
 * Guarantees: every site's stacked inputs listed in site order; a coded error ({@code GRAFT170})
 * naming every declaration that has no per-row form (not a linear-site update, or placed by a
 * composition), with the reason.
 */
public final class GatheredAdapters {
  /** The int64 {@code [batch]} input: each row's adapter, 0 for none. */
  public static final String ADAPTER_INDEX = "adapter_index";
  /** The symbolic stack size and rank. */
  public static final String ADAPTERS = "adapters";

  public static final String RANK = "rank";

  private GatheredAdapters() {}

  /**
   * Adds the index input and every site's stacked factors to {@code graph}.
   *
   * @param updates the update graph's records ({@link SiteUpdates}): which sites have factors, of
   *     what shape, under which outputs, and why the others have none
   * @return the stacked inputs, in site order
   */
  public static List<GatheredTensor> place(Graph graph, GraftSpec spec, Validation.Plan plan, List<SiteUpdate> updates,
      int elemType) {
    Map<Integer, String> refused = new TreeMap<>();
    for (SiteUpdate u : updates) {
      if (!u.getMergeable()) {
        refused.putIfAbsent(u.getAdapter(), describe(plan.adapters().get(u.getAdapter() - 1)) + ": " + u.getReason());
      }
    }
    for (int i = 0; i < plan.adapters().size(); i++) {
      PlannedAdapter a = plan.adapters().get(i);
      if (!(a.kind() instanceof LinearUpdateKind) || !a.sites().stream().allMatch(s -> s instanceof LinearSite)) {
        refused.putIfAbsent(i + 1, describe(a) + ": not a linear-site update");
      }
    }
    if (!refused.isEmpty()) {
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.GATHERED_UNSUPPORTED, spec.source(), null,
          spec.name(), String.join("; ", refused.values()))));
    }
    graph.addInput(ADAPTER_INDEX, TensorType.of(TensorType.INT64, List.of(batch(graph))));
    Map<String, LinearSite> sites = new LinkedHashMap<>();
    plan.adapters().forEach(a -> a.sites().forEach(s -> sites.put(s.node(), (LinearSite) s)));
    List<GatheredTensor> stacked = new ArrayList<>();
    for (SiteUpdate u : updates) {
      LinearSite site = sites.get(u.getSiteNode());
      String base = "gathered/" + site.modulePath();
      String rank = RANK + "." + site.modulePath();
      stacked.add(tensor(base + "/A", GatheredRole.FACTOR_A, site, u.getOutputA(), site.in(), 0));
      stacked.add(tensor(base + "/B", GatheredRole.FACTOR_B, site, u.getOutputB(), 0, site.out()));
      addStack(graph, base + "/A", elemType, rank, site.in(), 0);
      addStack(graph, base + "/B", elemType, rank, 0, site.out());
      String bias = null;
      if (!u.getOutputBias().isEmpty()) {
        bias = base + "/bias";
        stacked.add(tensor(bias, GatheredRole.FACTOR_BIAS, site, u.getOutputBias(), site.out()));
        addStack(graph, bias, elemType, rank, site.out());
      }
      addUpdate(graph, site, base + "/A", base + "/B", bias, elemType);
    }
    graph.sortTopologically();
    return stacked;
  }

  /** A stacked input {@code [adapters, ...shape]} ({@code 0} in {@code shape}: the symbolic dim {@code rank}). */
  public static void addStack(Graph graph, String name, int elemType, String rank, long... shape) {
    List<Dim> dims = new ArrayList<>();
    dims.add(Dim.symbol(ADAPTERS));
    for (long d : shape) {
      dims.add(d == 0 ? Dim.symbol(rank) : Dim.of(d));
    }
    graph.addInput(name, TensorType.of(elemType, dims));
  }

  /** {@code Gather(stack, adapter_index)}: each batch row's slice of {@code stack}. */
  public static String rows(Graph graph, String base, String stack) {
    return graph.op(base + "/Gather", "Gather", List.of(stack, ADAPTER_INDEX), attr("axis", 0L));
  }

  private static GatheredTensor tensor(String name, GatheredRole role, LinearSite site, String source, long... shape) {
    GatheredTensor.Builder t = GatheredTensor.newBuilder().setName(name).setRole(role).setSite(site.modulePath())
        .setSiteNode(site.node()).setSource(source);
    for (long d : shape) {
      t.addShape(d);
    }
    return t.build();
  }

  /**
   * {@code y' = y + g·(x·A_row)·B_row (+ β·bias_row)} at the site's output ({@code g} a Gemm's
   * alpha, {@code β} its beta; the bias change is added where the layer adds its bias).
   */
  private static void addUpdate(Graph g, LinearSite site, String a, String b, @Nullable String bias, int elemType) {
    Node node = LinearAdapters.node(g, site);
    String base = "/gathered/" + site.modulePath().replace('.', '/');
    String x = site.input(g);
    TensorType xt = g.typeOrThrow(x);
    if (!xt.hasRank() || xt.rank() < 2) {
      throw new IllegalStateException("the input of " + site.node() + " has no known rank of at least 2: " + xt);
    }
    int rank = xt.rank();
    double alpha = 1;
    if (node.opType().equals("Gemm")) {
      if (node.attrInt("transA", 0) == 1) {
        x = g.op(base + "/Transpose", "Transpose", List.of(x), attr("perm", List.of(1L, 0L)));
      }
      alpha = node.attrFloat("alpha", 1f);
    }
    String aRows = rows(g, base + "/A", a);
    String bRows = rows(g, base + "/B", b);
    if (rank == 2) {
      x = g.op(base + "/Unsqueeze_x", "Unsqueeze", List.of(x, g.longs(base + "/axis_row", List.of(1L))));
    } else if (rank > 3) {
      List<Long> axes = new ArrayList<>();
      for (long i = 1; i <= rank - 3; i++) {
        axes.add(i);
      }
      String ax = g.longs(base + "/axes_rows", axes);
      aRows = g.op(base + "/Unsqueeze_A", "Unsqueeze", List.of(aRows, ax));
      bRows = g.op(base + "/Unsqueeze_B", "Unsqueeze", List.of(bRows, ax));
    }
    String down = g.op(base + "/MatMul_A", "MatMul", List.of(x, aRows));
    String up = g.op(base + "/MatMul_B", "MatMul", List.of(down, bRows));
    if (rank == 2) {
      up = g.op(base + "/Squeeze", "Squeeze", List.of(up, g.longs(base + "/axis_squeeze", List.of(1L))));
    }
    if (alpha != 1) {
      up = g.op(base + "/Mul", "Mul", List.of(up, g.scalar(base + "/alpha", elemType, alpha)));
    }
    if (bias != null) {
      String rows = rows(g, base + "/bias", bias);
      if (rank > 2) {
        List<Long> axes = new ArrayList<>();
        for (long i = 1; i <= rank - 2; i++) {
          axes.add(i);
        }
        rows = g.op(base + "/Unsqueeze_bias", "Unsqueeze", List.of(rows, g.longs(base + "/axes_bias", axes)));
      }
      double beta = node.opType().equals("Gemm") ? node.attrFloat("beta", 1f) : 1;
      if (beta != 1) {
        rows = g.op(base + "/Mul_beta", "Mul", List.of(rows, g.scalar(base + "/beta", elemType, beta)));
      }
      up = g.op(base + "/Add_bias", "Add", List.of(up, rows));
    }
    String y = site.output(g);
    g.add(base + "/Add", "Add", "", List.of(y, up), 1, Node.attrs());
    Node add = g.nodes().get(g.nodes().size() - 1);
    g.replaceUses(y, add.output(0), List.of(add));
  }

  /** The host's batch dimension: the first axis of its first input. */
  private static Dim batch(Graph graph) {
    TensorType t = graph.inputs().values().iterator().next();
    return t.hasRank() && t.rank() > 0 ? t.dim(0) : Dim.symbol("batch");
  }

  private static String describe(PlannedAdapter a) {
    return a.kind().displayName() + (a.spec().name().isEmpty() ? "" : " '" + a.spec().name() + "'")
        + " on '" + a.spec().target() + "'";
  }
}
