package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.gson.JsonObject;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * LoHa: beside each chosen linear site {@code y = x·W} it adds {@code s · dropout(x) · ((W1b·W1a)
 * ⊙ (W2b·W2a))}, {@code s = alpha / rank}, with {@code W1b, W2b [in, r]} and {@code W1a, W2a [r,
 * out]}: the transposes of PEFT's {@code hada_w1_b, hada_w2_b [r, in]} and {@code hada_w1_a,
 * hada_w2_a [out, r]}. As in PEFT, three factors start kaiming-uniform and {@code hada_w2_b}
 * at zero, so the update starts at zero.
 */
public final class LoHaKind implements LinearUpdateKind {
  @Override
  public String id() {
    return "loha";
  }

  @Override
  public String displayName() {
    return "LoHa";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.LoHa";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, LoraKind.MAX_RANK, "rank r of each of the two Hadamard factors"),
        AdapterOption.positive("alpha", 8, "scale numerator: the update is multiplied by alpha / rank"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int rank = spec.intOption("rank");
    double scaling = spec.doubleOption("alpha") / rank;
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      LinearAdapters.Input in = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), "loha");
      Map<String, String> factors = new HashMap<>();
      factors(placement, site, "1", rank, Init.KAIMING_UNIFORM, factors);
      factors(placement, site, "2", rank, Init.ZEROS, factors);
      String delta = hadamard(placement.graph(), in.base(), factors::get);
      LinearAdapters.addWeightUpdate(placement, site, in, delta, scaling);
    }
  }

  /** {@code ΔW = (alpha / rank) · (W1b·W1a) ⊙ (W2b·W2a)}. */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "loha") + "/delta";
    String product = hadamard(graph, base, tensors::parameter);
    return WeightUpdate.delta(LinearAdapters.scaled(graph, graph.typeOrThrow(tensors.hostWeight()).elemType(), base, product,
        spec.doubleOption("alpha") / spec.intOption("rank")));
  }

  /**
   * Adds {@code hada_w<i>_a [r, out]}, kaiming-uniform over PEFT's fan-in r, and {@code hada_w<i>_b
   * [in, r]} as {@code bInit} (kaiming-uniform over fan-in {@code in}, or zero), by suffix to {@code factors}.
   */
  private static void factors(Placement placement, LinearSite site, String i, int rank, Init bInit, Map<String, String> factors) {
    factors.put("hada_w" + i + "_a", placement.parameter(site, "hada_w" + i + "_a", rank, site.out()).exportRankAxis(0)
        .init(Init.KAIMING_UNIFORM, rank).saveTransposed(Placement.peftKey(site, "hada_w" + i + "_a")).add());
    factors.put("hada_w" + i + "_b", placement.parameter(site, "hada_w" + i + "_b", site.in(), rank).exportRankAxis(1)
        .init(bInit, bInit == Init.ZEROS ? 0 : site.in())
        .saveTransposed(Placement.peftKey(site, "hada_w" + i + "_b")).add());
  }

  /** {@code (W1b·W1a) ⊙ (W2b·W2a) [in, out]}, unscaled, from the factors by suffix. */
  private static String hadamard(Graph g, String base, Function<String, String> factor) {
    String w1 = g.op(base + "/MatMul_w1", "MatMul", List.of(factor.apply("hada_w1_b"), factor.apply("hada_w1_a")));
    String w2 = g.op(base + "/MatMul_w2", "MatMul", List.of(factor.apply("hada_w2_b"), factor.apply("hada_w2_a")));
    return g.op(base + "/Mul_hadamard", "Mul", List.of(w1, w2));
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "LOHA";
  }

  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    return PeftTargets.lycoris(c, spec.intOption("rank"), spec.doubleOption("alpha"), new JsonObject(), sites);
  }
}
