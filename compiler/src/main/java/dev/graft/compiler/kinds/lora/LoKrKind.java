package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.gson.JsonObject;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Function;

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
public final class LoKrKind implements LinearUpdateKind {
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

  /** The Kronecker split of a site: {@code in = inM·inN}, {@code out = outL·outK}, and which factors are products. */
  private record Split(long inM, long inN, long outL, long outK, boolean w1Decomposed, boolean w2Decomposed) {
    static Split of(AdapterSpec spec, LinearSite site) {
      int rank = spec.intOption("rank");
      long factor = spec.intOption("factor");
      long[] in = factorization(site.in(), factor);
      long[] out = factorization(site.out(), factor);
      return new Split(in[0], in[1], out[0], out[1],
          spec.boolOption("decomposeBoth") && rank < Math.max(out[0], in[0]) / 2.0, rank < Math.max(out[1], in[1]) / 2.0);
    }
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int rank = spec.intOption("rank");
    double scaling = spec.doubleOption("alpha") / rank;
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      Split split = Split.of(spec, site);
      LinearAdapters.Input in = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), "lokr");
      Map<String, String> factors = new HashMap<>();
      if (!split.w1Decomposed()) {
        factors.put("lokr_w1", placement.parameter(site, "lokr_w1", split.inM(), split.outL()).init(Init.ZEROS, 0)
            .saveTransposed(Placement.peftKey(site, "lokr_w1")).add());
      } else {
        factors.put("lokr_w1_b", placement.parameter(site, "lokr_w1_b", split.inM(), rank).exportRankAxis(1)
            .init(Init.KAIMING_UNIFORM, split.inM()).saveTransposed(Placement.peftKey(site, "lokr_w1_b")).add());
        factors.put("lokr_w1_a", placement.parameter(site, "lokr_w1_a", rank, split.outL()).exportRankAxis(0).init(Init.ZEROS, 0)
            .saveTransposed(Placement.peftKey(site, "lokr_w1_a")).add());
      }
      if (!split.w2Decomposed()) {
        factors.put("lokr_w2", placement.parameter(site, "lokr_w2", split.inN(), split.outK())
            .init(Init.KAIMING_UNIFORM, split.inN()).saveTransposed(Placement.peftKey(site, "lokr_w2")).add());
      } else {
        factors.put("lokr_w2_b", placement.parameter(site, "lokr_w2_b", split.inN(), rank).exportRankAxis(1)
            .init(Init.KAIMING_UNIFORM, split.inN()).saveTransposed(Placement.peftKey(site, "lokr_w2_b")).add());
        factors.put("lokr_w2_a", placement.parameter(site, "lokr_w2_a", rank, split.outK()).exportRankAxis(0)
            .init(Init.KAIMING_UNIFORM, rank).saveTransposed(Placement.peftKey(site, "lokr_w2_a")).add());
      }
      String delta = kronecker(placement.graph(), in.base(), split, factors::get);
      LinearAdapters.addWeightUpdate(placement, site, in, delta, scaling);
    }
  }

  /** {@code ΔW = (alpha / rank) · W1 ⊗ W2}, each factor full or the product of its two. */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "lokr") + "/delta";
    String product = kronecker(graph, base, Split.of(spec, site), tensors::parameter);
    return WeightUpdate.delta(LinearAdapters.scaled(graph, graph.typeOrThrow(tensors.hostWeight()).elemType(), base, product,
        spec.doubleOption("alpha") / spec.intOption("rank")));
  }

  /** {@code W1 ⊗ W2 [in, out]}, unscaled, from the factors by local name. */
  private static String kronecker(Graph g, String base, Split split, Function<String, String> factor) {
    String w1 = split.w1Decomposed()
        ? g.op(base + "/MatMul_w1", "MatMul", List.of(factor.apply("lokr_w1_b"), factor.apply("lokr_w1_a")))
        : factor.apply("lokr_w1");
    String w2 = split.w2Decomposed()
        ? g.op(base + "/MatMul_w2", "MatMul", List.of(factor.apply("lokr_w2_b"), factor.apply("lokr_w2_a")))
        : factor.apply("lokr_w2");
    return LinearAdapters.kronecker(g, base, w1, new long[] {split.inM(), split.outL()},
        w2, new long[] {split.inN(), split.outK()});
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
