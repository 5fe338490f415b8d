package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.ParameterRole;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * LoRA with DoRA ({@code dora = true}) and/or PiSSA ({@code init = "pissa"}) on a linear site
 * {@code y = g·x·W} ({@code g}: a Gemm's alpha, else 1; W {@code [in, out]}), scaling {@code s}:
 *
 * <ul>
 *   <li>PiSSA: A and B start at the principal factors of W ({@link Init#PISSA_A}, {@link
 *       Init#PISSA_B}); frozen copies A0, B0 of them keep the residual {@code W − s·A0·B0} that
 *       the host weight would hold in PEFT: {@code y' = g·(x·W − s·x·A0·B0 + s·x_d·A·B)}, where
 *       {@code x_d} is x after the adapter's dropout. At the start {@code y' = y}.
 *   <li>CorDA ({@code init = "corda_ipm"} / {@code "corda_kpm"}): as PiSSA, but A, B, A0 and B0
 *       start at zero ({@link Init#CORDA_A}, {@link Init#CORDA_B}) and the run time's calibration
 *       sets them to the factors of W times the input covariance of the site (recorded on each
 *       parameter as {@code covariance_input}), the largest (IPM) or smallest (KPM) ones.
 *   <li>DoRA: a magnitude m {@code [out]} (initially the column norms of W) rescales each output
 *       column of the updated weight {@code W' = W + s·A·B} (PiSSA: {@code + s·(A·B − A0·B0)}):
 *       {@code y' = g·(m / ‖W'‖_col) ⊙ (x·W')}, the host bias added after it. With dropout in
 *       training it is PEFT's form {@code y' = y_res + (f − 1)⊙g·x_d·W_res + f⊙g·s·x_d·A·B} with
 *       {@code f = m / ‖W'‖_col}, {@code W_res} the residual weight and {@code y_res = g·x·W_res}.
 *       The column norm is differentiated (PEFT detaches it to save memory, so its gradients
 *       differ from these, which are the true ones).
 * </ul>
 *
 * <p>Both read W as {@code [in, out]} from the host: a Gemm with {@code transB=1} is an error
 * ({@link ErrorCode#LORA_FAMILY_SITE_UNSUPPORTED}), as is DoRA on a Gemm whose C input would be
 * rescaled with the weight term.
 */
final class LoraVariants {
  private LoraVariants() {}

  /** The sites a DoRA or PiSSA declaration cannot take, and a PiSSA rank above a weight's rank. */
  static List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    boolean dora = spec.boolOption("dora");
    boolean corda = LoraKind.corda(spec);
    boolean pissa = spec.stringOption("init").equals(LoraKind.PISSA_INIT) || corda;
    List<Diagnostic> out = new ArrayList<>();
    if (!dora && !pissa) {
      return out;
    }
    String option = dora ? "dora" : "init";
    String what = dora ? "with dora = true" : "with init = \"" + spec.stringOption("init") + "\"";
    int rank = spec.intOption("rank");
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      Node node = LinearAdapters.node(graph, site);
      if (site.int8() != null) {
        out.add(Diagnostic.of(ErrorCode.INT8_SITE_UNSUPPORTED, spec.source(), option, "LoRA", what, site.node(),
            (dora ? "DoRA rescales the dense weight by its column norms ‖W + ΔW‖" : "PiSSA initializes from the SVD of"
                + " the dense weight and takes its principal part out of it") + ", and this layer's weight '"
                + site.weight() + "' stays int8 (MatMulInteger)"));
      } else if (site.outFirst()) {
        out.add(Diagnostic.of(ErrorCode.LORA_FAMILY_SITE_UNSUPPORTED, spec.source(), option, "LoRA", what,
            site.node(), "its weight is stored [out, in] (" + (node.opType().equals("Gemm") ? "Gemm transB=1"
                : "read through a Transpose") + ") and DoRA and PiSSA read the host weight as [in, out]; choose"
                + " MatMul sites or plain LoRA"));
      } else if (dora && node.opType().equals("Gemm") && node.inputs().size() > 2 && !node.input(2).isEmpty()) {
        out.add(Diagnostic.of(ErrorCode.LORA_FAMILY_SITE_UNSUPPORTED, spec.source(), option, "LoRA", what,
            site.node(), "the Gemm adds its C input inside the node, and DoRA must rescale the weight term alone"));
      } else if (corda && node.opType().equals("Gemm") && node.attrInt("transA", 0) == 1) {
        out.add(Diagnostic.of(ErrorCode.LORA_FAMILY_SITE_UNSUPPORTED, spec.source(), option, "LoRA", what,
            site.node(), "the Gemm reads its input transposed (transA=1), and CorDA's calibration collects the"
                + " covariance of input rows; choose MatMul sites"));
      } else if (pissa && rank > Math.min(site.in(), site.out())) {
        out.add(Diagnostic.of(corda ? ErrorCode.CORDA_RANK_TOO_LARGE : ErrorCode.PISSA_RANK_TOO_LARGE, spec.source(),
            "rank", rank, site.node(), site.in(), site.out(), Math.min(site.in(), site.out())));
      }
    }
    return out;
  }

  static void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int rank = spec.intOption("rank");
    double s = LoraKind.scaling(spec);
    double dropout = spec.doubleOption("dropout");
    boolean dora = spec.boolOption("dora");
    boolean corda = LoraKind.corda(spec);
    boolean smallest = spec.stringOption("init").equals(LoraKind.CORDA_KPM_INIT);
    // PiSSA and CorDA both start A, B at factors of the host weight and keep frozen copies A0, B0.
    boolean pissa = spec.stringOption("init").equals(LoraKind.PISSA_INIT) || corda;
    boolean dropped = placement.variant().trains() && dropout > 0;
    Graph g = placement.graph();
    for (Site each : sites) {
      LinearSite site = (LinearSite) each;
      LinearAdapters.Input in = LinearAdapters.input(site, placement, dropout, "lora");
      String x = dropped ? LinearAdapters.input(site, placement, 0, "lora").value() : in.value();
      Placement.ParameterBuilder pa = placement.parameter(site, "lora_A", site.in(), rank).role(ParameterRole.LORA_A)
          .exportRankAxis(1);
      Placement.ParameterBuilder pb = placement.parameter(site, "lora_B", rank, site.out()).role(ParameterRole.LORA_B)
          .exportRankAxis(0);
      String covarianceInput = site.input(g);
      if (corda) {
        pa.initFromCovariance(Init.CORDA_A, site.weight(), s, covarianceInput, smallest);
        pb.initFromCovariance(Init.CORDA_B, site.weight(), s, covarianceInput, smallest);
      } else if (pissa) {
        pa.initFromHost(Init.PISSA_A, site.weight(), s);
        pb.initFromHost(Init.PISSA_B, site.weight(), s);
      } else {
        pa.init(Init.KAIMING_UNIFORM, site.in());
        pb.init(Init.ZEROS, 0);
      }
      String a = pa.saveTransposed(Placement.peftKey(site, "lora_A.weight")).add();
      String b = pb.saveTransposed(Placement.peftKey(site, "lora_B.weight")).add();
      @Nullable String a0 = null;
      @Nullable String b0 = null;
      if (corda) {
        a0 = placement.parameter(site, "lora_A0", site.in(), rank).exportRankAxis(1)
            .initFromCovariance(Init.CORDA_A, site.weight(), s, covarianceInput, smallest).frozen().add();
        b0 = placement.parameter(site, "lora_B0", rank, site.out()).exportRankAxis(0)
            .initFromCovariance(Init.CORDA_B, site.weight(), s, covarianceInput, smallest).frozen().add();
      } else if (pissa) {
        a0 = placement.parameter(site, "lora_A0", site.in(), rank).exportRankAxis(1).initFromHost(Init.PISSA_A, site.weight(), s)
            .frozen().add();
        b0 = placement.parameter(site, "lora_B0", rank, site.out()).exportRankAxis(0).initFromHost(Init.PISSA_B, site.weight(), s)
            .frozen().add();
      }
      @Nullable String m = dora
          ? placement.parameter(site, "lora_magnitude_vector", site.out())
              .initFromHost(Init.HOST_COLUMN_NORM, site.weight(), 0).noDecay()
              .save(Placement.peftKey(site, "lora_magnitude_vector")).add()
          : null;

      String base = in.base();
      double gs = in.outputScale();
      String y = site.output(g);
      int before = g.nodes().size();
      // x_d·A·B, unscaled
      String lora = g.op(base + "/MatMul_B", "MatMul", List.of(g.op(base + "/MatMul_A", "MatMul", List.of(in.value(), a)), b));
      // The part of the output the residual weight gives, and the update beside it (both still to be scaled by g·s).
      String residual = y;
      String update = lora;
      if (pissa) {
        String correction = product(g, base + "/residual", x, a0, b0);
        if (dora && dropped) {
          residual = g.op(base + "/residual/Sub", "Sub", List.of(y, scaled(placement, base + "/residual", correction, gs * s)));
        } else {
          update = g.op(base + "/Sub", "Sub", List.of(lora, correction));
        }
      }
      if (!dora) {
        LinearAdapters.addToOutput(placement, site, base, update, gs * s);
        continue;
      }
      String f = magnitudeScale(placement, base, site, a, b, a0, b0, Objects.requireNonNull(m), s);
      String out;
      if (!dropped) {
        String updated = g.op(base + "/Add", "Add", List.of(residual, scaled(placement, base, update, gs * s)));
        out = g.op(base + "/dora/Mul", "Mul", List.of(updated, f));
      } else {
        // PEFT's form under dropout: y_res + (f − 1)⊙g·x_d·W_res + f⊙g·s·x_d·A·B.
        String xw = g.op(base + "/dora/MatMul_W", "MatMul", List.of(in.value(), site.weight()));
        if (pissa) {
          xw = g.op(base + "/dora/Sub", "Sub", List.of(xw,
              scaled(placement, base + "/dora/residual", product(g, base + "/dora/residual", in.value(), a0, b0), s)));
        }
        String fMinusOne = g.op(base + "/dora/Sub_1", "Sub", List.of(f, placement.scalar(base + "/dora/one", 1)));
        String weightTerm = g.op(base + "/dora/Mul_W", "Mul", List.of(scaled(placement, base + "/dora/W", xw, gs), fMinusOne));
        String loraTerm = g.op(base + "/dora/Mul_B", "Mul", List.of(scaled(placement, base, update, gs * s), f));
        out = g.op(base + "/dora/Add", "Add", List.of(g.op(base + "/dora/Add_W", "Add", List.of(residual, weightTerm)), loraTerm));
      }
      List<Node> added = new ArrayList<>(g.nodes().subList(before, g.nodes().size()));
      g.replaceUses(y, out, added);
    }
  }

  /**
   * LoRA's weight update at {@code site} from {@code tensors} ({@code lora_A}, {@code lora_B};
   * {@code lora_A0}, {@code lora_B0} with PiSSA; {@code lora_magnitude_vector} with DoRA): {@code
   * ΔW = s·A·B}, with PiSSA {@code s·(A·B − A0·B0)}; with DoRA the merged {@code W' = (W + ΔW) ⊙
   * (m / ‖W + ΔW‖_col)}, each column j of {@code [in, out]} scaled by {@code m_j} over its norm.
   */
  static LinearUpdateKind.WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph g,
      LinearUpdateKind.SiteTensors tensors) {
    double s = LoraKind.scaling(spec);
    boolean pissa = spec.stringOption("init").equals(LoraKind.PISSA_INIT) || LoraKind.corda(spec);
    int elem = g.typeOrThrow(tensors.hostWeight()).elemType();
    String base = LinearAdapters.base(site, "lora") + "/delta";
    String delta = g.op(base + "/MatMul_AB", "MatMul", List.of(tensors.parameter("lora_A"), tensors.parameter("lora_B")));
    if (pissa) {
      delta = g.op(base + "/Sub_A0B0", "Sub", List.of(delta,
          g.op(base + "/MatMul_A0B0", "MatMul", List.of(tensors.parameter("lora_A0"), tensors.parameter("lora_B0")))));
    }
    delta = LinearAdapters.scaled(g, elem, base, delta, s);
    if (!spec.boolOption("dora")) {
      return LinearUpdateKind.WeightUpdate.delta(delta);
    }
    String w = LinearAdapters.weightInOut(g, site, tensors.hostWeight(), base);
    String weight = g.op(base + "/Add_W", "Add", List.of(w, delta));
    String squares = g.op(base + "/Mul_sq", "Mul", List.of(weight, weight));
    String norm = g.op(base + "/Sqrt", "Sqrt", List.of(g.op(base + "/ReduceSum", "ReduceSum",
        List.of(squares, g.longs(base + "/axes", List.of(0L))), Node.attr("keepdims", 0L))));
    String f = g.op(base + "/Div", "Div", List.of(tensors.parameter("lora_magnitude_vector"), norm));
    return new LinearUpdateKind.WeightUpdate(g.op(base + "/Mul_magnitude", "Mul", List.of(weight, f)), true, null);
  }

  /** LoRA's update at {@code site} as factors (see {@link LoraKind#factors}); null with DoRA. */
  static LinearUpdateKind.@Nullable Factors factors(AdapterSpec spec, LinearSite site, Graph g,
      LinearUpdateKind.SiteTensors tensors) {
    if (spec.boolOption("dora")) {
      return null;
    }
    int rank = spec.intOption("rank");
    int elem = g.typeOrThrow(tensors.hostWeight()).elemType();
    String base = LinearAdapters.base(site, "lora") + "/factors";
    String a = tensors.parameter("lora_A");
    String b = tensors.parameter("lora_B");
    if (spec.stringOption("init").equals(LoraKind.PISSA_INIT) || LoraKind.corda(spec)) {
      a = g.op(base + "/Concat_A", "Concat", List.of(a, tensors.parameter("lora_A0")), Node.attr("axis", 1L));
      b = g.op(base + "/Concat_B", "Concat", List.of(b, g.op(base + "/Neg_B0", "Neg", List.of(tensors.parameter("lora_B0")))),
          Node.attr("axis", 0L));
      rank *= 2;
    }
    return new LinearUpdateKind.Factors(LinearAdapters.scaled(g, elem, base, a, LoraKind.scaling(spec)), b, rank);
  }

  /**
   * DoRA's per-column factor {@code m / ‖W + s·(A·B − A0·B0)‖} ({@code [out]}), with the norm
   * over W's input dimension (axis 0 of Graft's {@code [in, out]}).
   */
  private static String magnitudeScale(Placement placement, String base, LinearSite site, String a, String b,
      @Nullable String a0, @Nullable String b0, String m, double s) {
    Graph g = placement.graph();
    String p = base + "/dora";
    String delta = g.op(p + "/MatMul_AB", "MatMul", List.of(a, b));
    if (a0 != null) {
      delta = g.op(p + "/Sub_A0B0", "Sub", List.of(delta, g.op(p + "/MatMul_A0B0", "MatMul", List.of(a0, b0))));
    }
    String weight = g.op(p + "/Add_W", "Add", List.of(site.weight(), scaled(placement, p + "/delta", delta, s)));
    String squares = g.op(p + "/Mul_sq", "Mul", List.of(weight, weight));
    String sum = g.op(p + "/ReduceSum", "ReduceSum", List.of(squares, g.longs(p + "/axes", List.of(0L))),
        Node.attr("keepdims", 0L));
    String norm = g.op(p + "/Sqrt", "Sqrt", List.of(sum));
    return g.op(p + "/Div", "Div", List.of(m, norm));
  }

  /** {@code (x·a)·b}. */
  private static String product(Graph g, String prefix, String x, String a, String b) {
    return g.op(prefix + "/MatMul_B", "MatMul", List.of(g.op(prefix + "/MatMul_A", "MatMul", List.of(x, a)), b));
  }

  /** {@code value · scale}, or {@code value} when the scale is 1. */
  private static String scaled(Placement placement, String prefix, String value, double scale) {
    return scale == 1 ? value
        : placement.graph().op(prefix + "/Mul", "Mul", List.of(value, placement.scalar(prefix + "/scaling", scale)));
  }
}
