package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.ParameterRole;
import java.util.ArrayList;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * DyLoRA (Valipour et al., 2023): LoRA trained at every rank up to {@code rank} at once. Each
 * training step draws one rank {@code b} in {@code 1..rank} from the step's seed ({@link
 * #drawnRank}); every site of the declaration then uses only A's first b columns and B's first b
 * rows, scaled by {@code alpha / b}: {@code y' = y + (alpha / b) · (x_d·A[:, :b])·B[:b, :]}
 * (times a Gemm's alpha). The inference graph uses the full rank, {@code alpha / rank}; the
 * runtime can truncate a trained adapter to any rank k (A's columns and B's rows from k on
 * zeroed, B rescaled so the scaling is {@code alpha / k}) or export it at rank k as a plain PEFT
 * LoRA.
 *
 * <p>Parameters and their saved keys are LoRA's ({@code lora_A.weight} {@code [rank, in]}, {@code
 * lora_B.weight} {@code [out, rank]}); PEFT has no DyLoRA, so a graft with it saves Graft's own
 * config.
 */
public final class DyLoraKind implements LinearUpdateKind {
  /** The Lehmer generator's modulus and multiplier (MINSTD) the drawn rank hashes the seed with. */
  static final long MODULUS = 2_147_483_647L;
  static final long MULTIPLIER = 48_271L;
  /** Low bits of the hash dropped before taking the rank (the generator's low bits are its weakest). */
  static final long LOW_BITS = 256;

  /** The kind's id. */
  public static final String ID = "dylora";

  @Override
  public String id() {
    return ID;
  }

  @Override
  public String displayName() {
    return "DyLoRA";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.DyLora";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, LoraKind.MAX_RANK, "maximum rank; each step trains a rank in 1..rank"),
        AdapterOption.positive("alpha", 16, "scale numerator: rank b is scaled by alpha / b"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  /**
   * The rank a training step with per-step seed {@code seed} uses, in {@code 1..rank}: two
   * steps of the Lehmer generator from {@code seed mod (2³¹ − 1)}, its low 8 bits dropped, mod
   * {@code rank}, plus 1. The training graph computes exactly this with integer ops.
   */
  public static int drawnRank(long seed, int rank) {
    long h = Math.floorMod(seed, MODULUS);
    h = h * MULTIPLIER % MODULUS;
    h = h * MULTIPLIER % MODULUS;
    return 1 + (int) (h / LOW_BITS % rank);
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int rank = spec.intOption("rank");
    double alpha = spec.doubleOption("alpha");
    Graph g = placement.graph();
    @Nullable Draw draw = placement.variant().trains() ? draw(placement, rank, alpha) : null;
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      LinearAdapters.Input in = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), "dylora");
      String a = placement.parameter(site, "lora_A", site.in(), rank).role(ParameterRole.LORA_A).exportRankAxis(1)
          .init(Init.KAIMING_UNIFORM, site.in()).saveTransposed(Placement.peftKey(site, "lora_A.weight")).add();
      String b = placement.parameter(site, "lora_B", rank, site.out()).role(ParameterRole.LORA_B).exportRankAxis(0)
          .init(Init.ZEROS, 0).saveTransposed(Placement.peftKey(site, "lora_B.weight")).add();
      String base = in.base();
      String down = g.op(base + "/MatMul_A", "MatMul", List.of(in.value(), a));
      if (draw == null) {
        String up = g.op(base + "/MatMul_B", "MatMul", List.of(down, b));
        LinearAdapters.addToOutput(placement, site, base, up, alpha / rank * in.outputScale());
      } else {
        // Masking x·A's columns from b on zeroes A's columns and B's rows from b on, and their gradients.
        String masked = g.op(base + "/Mul_mask", "Mul", List.of(down, draw.mask()));
        String up = g.op(base + "/MatMul_B", "MatMul", List.of(masked, b));
        String scaled = g.op(base + "/Mul_scaling", "Mul", List.of(up, draw.scaling()));
        LinearAdapters.addToOutput(placement, site, base, scaled, in.outputScale());
      }
    }
  }

  /** At the full rank, as the inference graph: {@code ΔW = (alpha / rank) · A·B}. */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "dylora") + "/delta";
    String product = graph.op(base + "/MatMul_AB", "MatMul", List.of(tensors.parameter("lora_A"), tensors.parameter("lora_B")));
    return WeightUpdate.delta(LinearAdapters.scaled(graph, graph.typeOrThrow(tensors.hostWeight()).elemType(), base, product,
        spec.doubleOption("alpha") / spec.intOption("rank")));
  }

  /** {@code (alpha / rank)·A} and B at the full rank. */
  @Override
  public @Nullable Factors factors(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "dylora") + "/factors";
    return new Factors(LinearAdapters.scaled(graph, graph.typeOrThrow(tensors.hostWeight()).elemType(), base,
        tensors.parameter("lora_A"), spec.doubleOption("alpha") / spec.intOption("rank")), tensors.parameter("lora_B"),
        spec.intOption("rank"));
  }

  /** The step's drawn rank as a column mask {@code [rank]} (1 below b, else 0) and the scaling {@code alpha / b}. */
  private record Draw(String mask, String scaling) {}

  /** The graph of {@link #drawnRank}: int64 ops on the per-step seed, then the mask and scaling. */
  private static Draw draw(Placement placement, int rank, double alpha) {
    Graph g = placement.graph();
    String p = "/dylora/rank";
    String modulus = int64(g, p + "/modulus", MODULUS);
    String multiplier = int64(g, p + "/multiplier", MULTIPLIER);
    String h = g.op(p + "/Mod", "Mod", List.of(placement.seed(), modulus));
    for (int i = 0; i < 2; i++) {
      h = g.op(p + "/Mod_step", "Mod", List.of(g.op(p + "/Mul_step", "Mul", List.of(h, multiplier)), modulus));
    }
    String high = g.op(p + "/Div", "Div", List.of(h, int64(g, p + "/low_bits", LOW_BITS)));
    String drawn = g.op(p + "/Add", "Add", List.of(g.op(p + "/Mod_rank", "Mod", List.of(high, int64(g, p + "/rank", rank))),
        int64(g, p + "/one", 1)));
    List<Long> indices = new ArrayList<>();
    for (long i = 0; i < rank; i++) {
      indices.add(i);
    }
    String kept = g.op(p + "/Less", "Less", List.of(g.longs(p + "/indices", indices), drawn));
    String mask = g.op(p + "/Cast_mask", "Cast", List.of(kept), Node.attr("to", (long) placement.elemType()));
    String b = g.op(p + "/Cast", "Cast", List.of(drawn), Node.attr("to", (long) placement.elemType()));
    String scaling = g.op(p + "/Div_scaling", "Div", List.of(placement.scalar(p + "/alpha", alpha), b));
    return new Draw(mask, scaling);
  }

  private static String int64(Graph g, String name, long value) {
    return g.constant(name, Tensors.longs(name, List.of(), List.of(value)));
  }

  /** Not in PEFT: Graft's own config. */
  @Override
  public @Nullable String peftType(AdapterSpec spec) {
    return null;
  }
}
