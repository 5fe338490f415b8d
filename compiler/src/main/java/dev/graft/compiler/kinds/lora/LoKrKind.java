package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.WeightDelta;

import com.google.gson.JsonObject;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.List;
import java.util.TreeSet;

/**
 * LoKr: beside each chosen linear site {@code y = x·W} with {@code W [in, out]} it adds {@code s
 * · dropout(x) · (W1 ⊗ W2)}, {@code s = alpha / rank}, where {@code in = in_m·in_n} and {@code
 * out = out_l·out_k} are split by PEFT's {@code factorization(dim, factor)}, {@code W1 [in_m,
 * out_l]} and {@code W2 [in_n, out_k]}. As in PEFT, W1 is full unless {@code decomposeBoth} and
 * the rank is below half its larger side (then {@code W1 = W1b·W1a}), W2 is {@code W2b·W2a} of
 * rank r when r is below half its larger side, else full; the factor PEFT zeroes (W1, or W1a)
 * makes the update start at zero. Parameters are the transposes of PEFT's ({@code [out, in]}
 * layout) and are saved transposed under PEFT's keys.
 */
public final class LoKrKind implements AdapterKind {
  @Override
  public String id() {
    return "lokr";
  }

  @Override
  public String displayName() {
    return "LoKr";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.LoKr";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, LoraKind.MAX_RANK, "rank of the low-rank decomposition of W2 (and W1 with decomposeBoth)"),
        AdapterOption.positive("alpha", 8, "scale numerator: the update is multiplied by alpha / rank"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"),
        AdapterOption.integer("factor", -1, -1, Integer.MAX_VALUE,
            "Kronecker split: -1 for the near-square split, else the size of the smaller factor's side (PEFT's decompose_factor)"),
        AdapterOption.bool("decomposeBoth", false, "also decompose W1 at the rank (PEFT's decompose_both)"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    return AdapterKind.optionsInvalid(this, spec, problems(spec, sites));
  }

  private static List<String> problems(AdapterSpec spec, List<? extends Site> sites) {
    int factor = spec.intOption("factor");
    if (factor == 0) {
      return List.of("factor must be -1 (near-square split) or positive, got 0");
    }
    if (factor < 0) {
      return List.of();
    }
    TreeSet<Long> bad = new TreeSet<>();
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      for (long d : new long[] {site.in(), site.out()}) {
        if (d % factor != 0) {
          bad.add(d);
        }
      }
    }
    return bad.isEmpty() ? List.of()
        : List.of("factor " + factor + " does not divide the site dimensions " + bad + " (use a divisor, or -1 for the near-square split)");
  }

  /**
   * PEFT's {@code factorization(dim, factor)}: {@code (factor, dim / factor)} when the factor
   * divides the dimension; otherwise (factor -1) the pair of divisors {@code m ≤ n} with {@code
   * m·n = dim} found by stepping m up from 1 while {@code m + n} does not grow and {@code m ≤
   * factor}.
   */
  public static long[] factorization(long dimension, long factor) {
    if (factor > 0 && dimension % factor == 0) {
      return new long[] {factor, dimension / factor};
    }
    long limit = factor == -1 ? dimension : factor;
    long m = 1;
    long n = dimension;
    long length = m + n;
    while (m < n) {
      long newM = m + 1;
      while (dimension % newM != 0) {
        newM++;
      }
      long newN = dimension / newM;
      if (newM + newN > length || newM > limit) {
        break;
      }
      m = newM;
      n = newN;
    }
    return m > n ? new long[] {n, m} : new long[] {m, n};
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int rank = spec.intOption("rank");
    long factor = spec.intOption("factor");
    boolean decomposeBoth = spec.boolOption("decomposeBoth");
    double scaling = spec.doubleOption("alpha") / rank;
    Graph g = placement.graph();
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      long[] inSplit = factorization(site.in(), factor);
      long[] outSplit = factorization(site.out(), factor);
      long inM = inSplit[0];
      long inN = inSplit[1];
      long outL = outSplit[0];
      long outK = outSplit[1];
      LoraKind.Input in = LoraKind.input(site, placement, spec.doubleOption("dropout"), "lokr");
      String w1;
      if (!(decomposeBoth && rank < Math.max(outL, inM) / 2.0)) {
        w1 = placement.parameter(site, "lokr_w1", inM, outL).init(Init.ZEROS, 0)
            .saveTransposed(Placement.peftKey(site, "lokr_w1")).add();
      } else {
        String b = placement.parameter(site, "lokr_w1_b", inM, rank).init(Init.KAIMING_UNIFORM, inM)
            .saveTransposed(Placement.peftKey(site, "lokr_w1_b")).add();
        String a = placement.parameter(site, "lokr_w1_a", rank, outL).init(Init.ZEROS, 0)
            .saveTransposed(Placement.peftKey(site, "lokr_w1_a")).add();
        w1 = g.op(in.base() + "/MatMul_w1", "MatMul", List.of(b, a));
      }
      String w2;
      if (!(rank < Math.max(outK, inN) / 2.0)) {
        w2 = placement.parameter(site, "lokr_w2", inN, outK).init(Init.KAIMING_UNIFORM, inN)
            .saveTransposed(Placement.peftKey(site, "lokr_w2")).add();
      } else {
        String b = placement.parameter(site, "lokr_w2_b", inN, rank).init(Init.KAIMING_UNIFORM, inN)
            .saveTransposed(Placement.peftKey(site, "lokr_w2_b")).add();
        String a = placement.parameter(site, "lokr_w2_a", rank, outK).init(Init.KAIMING_UNIFORM, rank)
            .saveTransposed(Placement.peftKey(site, "lokr_w2_a")).add();
        w2 = g.op(in.base() + "/MatMul_w2", "MatMul", List.of(b, a));
      }
      String delta = WeightDelta.kronecker(g, in.base(), w1, new long[] {inM, outL}, w2, new long[] {inN, outK});
      WeightDelta.apply(placement, site, in, delta, scaling);
    }
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "LOKR";
  }

  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    JsonObject fixed = new JsonObject();
    fixed.addProperty("decompose_both", spec.boolOption("decomposeBoth"));
    fixed.addProperty("decompose_factor", spec.intOption("factor"));
    return PeftTargets.lycoris(c, spec.intOption("rank"), spec.doubleOption("alpha"), fixed, sites);
  }
}
