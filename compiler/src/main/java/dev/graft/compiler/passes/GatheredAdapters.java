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
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.lora.LinearAdapters;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.compiler.plan.Validation;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.GatheredRole;
import dev.graft.spec.manifest.GatheredTensor;
import dev.graft.spec.manifest.Parameter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Gathered placement pass (the {@code GATHERED} variant): at every linear site of the graft, {@code
 * y' = y + g·(x·A_row)·B_row}, where {@code A_row} and {@code B_row} are the rows that the int64
 * input {@link #ADAPTER_INDEX} {@code [batch]} picks ({@code Gather} on axis 0) from the stacked
 * inputs {@code gathered/<module>/A} {@code [adapters, in, rank]} and {@code gathered/<module>/B}
 * {@code [adapters, rank, out]}, multiplied per row ({@code MatMul} broadcasting over the batch);
 * {@code g} is a Gemm's alpha, {@code x} transposed for a Gemm with {@code transA=1}. {@code
 * adapters} and {@code rank} are symbolic, so one graph serves any number of adapters of any rank.
 *
 * <p>Needs: a fresh typed import of the host and the validated plan. Guarantees: every site's
 * stacked inputs listed in site order; a coded error ({@code GRAFT170}) naming every declaration
 * that is not a linear-site update, and the compositions, which have no per-row form.
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
   * @param parameters the graft's parameters (as placed in the inference graph), which the factors are computed from
   * @return the stacked inputs, in site order
   */
  public static List<GatheredTensor> place(Graph graph, GraftSpec spec, Validation.Plan plan,
      List<Parameter> parameters, int elemType) {
    List<String> refused = new ArrayList<>();
    for (PlannedAdapter a : plan.adapters()) {
      if (!(a.kind() instanceof LinearUpdateKind) || !a.sites().stream().allMatch(s -> s instanceof LinearSite)) {
        refused.add(describe(a) + " is not a linear-site update");
      } else if (!(a.kind() instanceof LoraKind lora) || !lora.composable(a.spec())) {
        refused.add(describe(a) + " has no low-rank factors to stack yet (plain LoRA and rsLoRA have)");
      }
    }
    plan.compositions().blocks().forEach(b -> refused.add("composition " + b.composition().expression()
        + " combines adapters per site"));
    if (!refused.isEmpty()) {
      throw new GraftCompileException(List.of(Diagnostic.of(ErrorCode.GATHERED_UNSUPPORTED, spec.source(), null,
          spec.name(), String.join("; ", refused))));
    }
    graph.addInput(ADAPTER_INDEX, TensorType.of(TensorType.INT64, List.of(batch(graph))));
    Map<String, LinearSite> sites = new LinkedHashMap<>();
    List<GatheredTensor> stacked = new ArrayList<>();
    for (PlannedAdapter a : plan.adapters()) {
      LinearUpdateKind kind = (LinearUpdateKind) a.kind();
      for (Site s : a.sites()) {
        LinearSite site = (LinearSite) s;
        sites.put(site.node(), site);
        LinearUpdateKind.SiteTensors tensors = kind.tensors(a.spec(), a.sites(), site, parameters);
        String base = "gathered/" + site.modulePath();
        stacked.add(factor(base + "/A", GatheredRole.FACTOR_A, site, tensors.parameter("lora_A"), 1, site.in(), 0));
        stacked.add(factor(base + "/B", GatheredRole.FACTOR_B, site, tensors.parameter("lora_B"),
            LoraKind.scaling(a.spec()), 0, site.out()));
        addUpdate(graph, site, base + "/A", base + "/B", elemType);
      }
    }
    graph.sortTopologically();
    return stacked;
  }

  /** A stacked input {@code [adapters, ...shape]} ({@code 0} in {@code shape}: the symbolic rank). */
  public static void addStack(Graph graph, String name, int elemType, long... shape) {
    List<Dim> dims = new ArrayList<>();
    dims.add(Dim.symbol(ADAPTERS));
    for (long d : shape) {
      dims.add(d == 0 ? Dim.symbol(RANK) : Dim.of(d));
    }
    graph.addInput(name, TensorType.of(elemType, dims));
  }

  /** {@code Gather(stack, adapter_index)}: each batch row's slice of {@code stack}. */
  public static String rows(Graph graph, String base, String stack) {
    return graph.op(base + "/Gather", "Gather", List.of(stack, ADAPTER_INDEX), attr("axis", 0L));
  }

  private static GatheredTensor factor(String name, GatheredRole role, LinearSite site, String source, double scale,
      long d0, long d1) {
    return GatheredTensor.newBuilder().setName(name).setRole(role).setSite(site.modulePath()).setSiteNode(site.node())
        .addShape(d0).addShape(d1).setSource(source).setScale(scale).build();
  }

  private static void addUpdate(Graph g, LinearSite site, String a, String b, int elemType) {
    Node node = LinearAdapters.node(g, site);
    addStack(g, a, elemType, site.in(), 0);
    addStack(g, b, elemType, 0, site.out());
    String base = "/gathered/" + site.modulePath().replace('.', '/');
    String x = node.input(0);
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
    String y = node.output(0);
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
