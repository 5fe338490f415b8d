package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.ParameterRole;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * LoRA: beside each chosen linear site {@code y = x·W} it adds {@code y' = y + scaling ·
 * (dropout(x) · A) · B} with A {@code [in, r]} (kaiming-uniform) and B {@code [r, out]} (zero),
 * {@code scaling = alpha / r} ({@code alpha / sqrt(r)} with rsLoRA). On a Gemm site {@code y =
 * alpha_g·x'·W' + beta·C} the update is {@code alpha_g · scaling · (x'·A)·B} ({@code x'} = xᵀ when
 * {@code transA=1}): LoRA adds to the weight term as in PEFT, so merging {@code W' + scaling·A·B}
 * into the host weight gives the same function. Dropout is only placed in training graphs.
 *
 * <p>Options {@code dora} (DoRA) and {@code init = "pissa"} (PiSSA) are placed by {@link
 * LoraVariants}.
 */
public final class LoraKind implements ComposableKind, LinearUpdateKind {
  public static final int MAX_RANK = 4096;
  /** Values of option {@code init}. */
  public static final String DEFAULT_INIT = "default";
  public static final String PISSA_INIT = "pissa";
  /** CorDA's instruction-previewed (largest components of W·C) and knowledge-preserved (smallest) modes. */
  public static final String CORDA_IPM_INIT = "corda_ipm";
  public static final String CORDA_KPM_INIT = "corda_kpm";

  @Override
  public String id() {
    return "lora";
  }

  @Override
  public String displayName() {
    return "LoRA";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Lora";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, MAX_RANK, "rank r of the update"),
        AdapterOption.positive("alpha", 16, "scale numerator: the update is multiplied by alpha / r"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"),
        AdapterOption.bool("rslora", false, "rank-stabilized scaling alpha / sqrt(r)"),
        AdapterOption.bool("dora", false, "DoRA: a trainable magnitude per output column rescales the updated weight"),
        AdapterOption.choice("init", DEFAULT_INIT, List.of(DEFAULT_INIT, PISSA_INIT, CORDA_IPM_INIT, CORDA_KPM_INIT),
            "initial A and B: default (kaiming-uniform A, zero B), pissa (principal factors of the host weight),"
                + " corda_ipm or corda_kpm (CorDA: the largest or smallest factors of the host weight times the input"
                + " covariance, from AdapterModel.calibrate)"));
  }

  /**
   * PEFT's default targets for BERT-style and Llama-style hosts: the query and value projections.
   * A declaration with an empty target takes these sites.
   */
  public static final String DEFAULT_TARGET = "(?i).*/(query|value|q_proj|v_proj)/(MatMul|MatMul_quant|Gemm)";

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    return LoraVariants.diagnose(spec, sites, graph);
  }

  /** {@code alpha / rank}, or {@code alpha / sqrt(rank)} with rsLoRA. */
  public static double scaling(AdapterSpec spec) {
    int rank = spec.intOption("rank");
    double alpha = spec.doubleOption("alpha");
    return spec.boolOption("rslora") ? alpha / Math.sqrt(rank) : alpha / rank;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    if (!composable(spec)) {
      LoraVariants.place(spec, sites, placement);
      return;
    }
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      Update u = update(spec, site, site.out(), placement);
      LinearAdapters.addToOutput(placement, site, u.base(), u.value(), u.scale());
    }
  }

  /** Plain LoRA composes; DoRA rescales the whole output and PiSSA reads the host weight, so they are placed alone. */
  @Override
  public boolean composable(AdapterSpec spec) {
    return !spec.boolOption("dora") && spec.stringOption("init").equals(DEFAULT_INIT);
  }

  /** Whether {@code spec} starts from CorDA's factors ({@code init = "corda_ipm"} or {@code "corda_kpm"}). */
  public static boolean corda(AdapterSpec spec) {
    String init = spec.stringOption("init");
    return init.equals(CORDA_IPM_INIT) || init.equals(CORDA_KPM_INIT);
  }

  /**
   * {@code ΔW = s·A·B} with {@code s = alpha / r} ({@code alpha / sqrt(r)} with rsLoRA); PiSSA
   * {@code s·(A·B − A0·B0)}; DoRA the merged weight {@code W' = (W + ΔW) · diag(m / ‖W + ΔW‖_col)}
   * (see {@link LoraVariants}).
   */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    return LoraVariants.weightUpdate(spec, site, graph, tensors);
  }

  /**
   * {@code s·A} and B at rank r; PiSSA {@code s·[A, A0]} and {@code [B; −B0]} at rank 2r; none for
   * DoRA, whose merged weight is not an additive low-rank update.
   */
  @Override
  public @Nullable Factors factors(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    return LoraVariants.factors(spec, site, graph, tensors);
  }

  /** {@code v + scaling · (x_d·A)·B}, with B {@code [r, width]}: the same update as {@link #place}, added after the bias. */
  @Override
  public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    Update u = update(spec, (LinearSite) site, width, placement);
    Graph g = placement.graph();
    String scaled = u.scale() == 1 ? u.value()
        : g.op(u.base() + "/Mul", "Mul", List.of(u.value(), placement.scalar(u.base() + "/scaling", u.scale())));
    return g.op(u.base() + "/Add", "Add", List.of(value, scaled));
  }

  /** LoRA's update at a site before scaling, {@code (x_d·A)·B} {@code [.., width]}, its node prefix and its scale. */
  private record Update(String value, String base, double scale) {}

  /** Adds A {@code [in, r]}, B {@code [r, width]} and the update's nodes at {@code site}. */
  private static Update update(AdapterSpec spec, LinearSite site, long width, Placement placement) {
    int rank = spec.intOption("rank");
    LinearAdapters.Input in = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), "lora");
    String a = placement.parameter(site, "lora_A", site.in(), rank).role(ParameterRole.LORA_A).exportRankAxis(1)
        .init(Init.KAIMING_UNIFORM, site.in()).saveTransposed(Placement.peftKey(site, "lora_A.weight")).add();
    String b = placement.parameter(site, "lora_B", rank, width).role(ParameterRole.LORA_B).exportRankAxis(0)
        .init(Init.ZEROS, 0).saveTransposed(Placement.peftKey(site, "lora_B.weight")).add();
    Graph g = placement.graph();
    String base = in.base();
    String down = g.op(base + "/MatMul_A", "MatMul", List.of(in.value(), a));
    String up = g.op(base + "/MatMul_B", "MatMul", List.of(down, b));
    return new Update(up, base, scaling(spec) * in.outputScale());
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "LORA";
  }

  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    String init = spec.stringOption("init");
    // PEFT writes CorDA's adapters with init_lora_weights "corda" (both modes: corda_config names the mode).
    JsonPrimitive value = init.equals(PISSA_INIT) ? new JsonPrimitive(PISSA_INIT)
        : corda(spec) ? new JsonPrimitive("corda") : new JsonPrimitive(true);
    return PeftTargets.lora(spec, sites, c, spec.boolOption("dora"), value);
  }
}
