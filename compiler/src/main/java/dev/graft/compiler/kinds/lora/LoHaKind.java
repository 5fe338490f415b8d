package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.WeightDelta;

import com.google.gson.JsonObject;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.List;

/**
 * LoHa: beside each chosen linear site {@code y = x·W} it adds {@code s · dropout(x) · ((W1b·W1a)
 * ⊙ (W2b·W2a))}, {@code s = alpha / rank}, with {@code W1b, W2b [in, r]} and {@code W1a, W2a [r,
 * out]}: the transposes of PEFT's {@code hada_w1_b, hada_w2_b [r, in]} and {@code hada_w1_a,
 * hada_w2_a [out, r]}. As in PEFT, three factors start kaiming-uniform and {@code hada_w2_b}
 * at zero, so the update starts at zero.
 */
public final class LoHaKind implements AdapterKind {
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
    Graph g = placement.graph();
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      LoraKind.Input in = LoraKind.input(site, placement, spec.doubleOption("dropout"), "loha");
      String w1 = product(placement, site, in.base(), "1", rank, Init.KAIMING_UNIFORM);
      String w2 = product(placement, site, in.base(), "2", rank, Init.ZEROS);
      String delta = g.op(in.base() + "/Mul_hadamard", "Mul", List.of(w1, w2));
      WeightDelta.apply(placement, site, in, delta, scaling);
    }
  }

  /**
   * {@code hada_w<i>_b · hada_w<i>_a [in, out]}: {@code _a [r, out]} kaiming-uniform over PEFT's
   * fan-in r, {@code _b [in, r]} as {@code bInit} (kaiming-uniform over fan-in {@code in}, or zero).
   */
  private static String product(Placement placement, LinearSite site, String base, String i, int rank, Init bInit) {
    String a = placement.parameter(site, "hada_w" + i + "_a", rank, site.out()).init(Init.KAIMING_UNIFORM, rank)
        .saveTransposed(Placement.peftKey(site, "hada_w" + i + "_a")).add();
    String b = placement.parameter(site, "hada_w" + i + "_b", site.in(), rank)
        .init(bInit, bInit == Init.ZEROS ? 0 : site.in())
        .saveTransposed(Placement.peftKey(site, "hada_w" + i + "_b")).add();
    return placement.graph().op(base + "/MatMul_w" + i, "MatMul", List.of(b, a));
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
