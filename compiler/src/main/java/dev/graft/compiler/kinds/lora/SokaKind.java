package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.WeakHashMap;
import org.jspecify.annotations.Nullable;

/**
 * SoKA (SVD on Kronecker Adaptation; Chong and Qu, arXiv 2506.15251, 2025) on a linear site {@code
 * y = g·x·W} with {@code W [in, out]}, {@code in = i1·i2}, {@code out = o1·o2}: the compiler reads W
 * and takes its Kronecker-product SVD ({@link KroneckerSvd}), {@code W = Σ_k A0_k ⊗ B0_k} with
 * {@code A0_k = √σ_k U_k [i1, o1]}, {@code B0_k = √σ_k V_k [i2, o2]}; it keeps the first K terms, K
 * chosen by the energy threshold, the spectrum's elbow or the fewer of the two ({@code rule}), at
 * most {@code maxTerms}. As PiSSA does, the principal part trains and the residual {@code W_res = W
 * − Σ A0_k ⊗ B0_k} stays frozen:
 *
 * <pre>y' = g·(x·W_res + x·Σ_k A_k ⊗ B_k),   A_k = A0_k + dA_k,  B_k = B0_k + dB_k</pre>
 *
 * <p>Where the site's node is the only reader of W, {@code W_res} is computed here (in double
 * precision) and takes W's place as a constant of the graph; where W has other readers (a tied
 * weight), W stays and the principal part is subtracted from the output, {@code x·W − x·Σ A0_k ⊗
 * B0_k}.
 *
 * <p>The principal factors are constants of the graphs (computed here from the host's values);
 * the parameters are the offsets {@code dA [K·i1, o1]} (row {@code k·i1 + a} is row a of {@code
 * dA_k}) and {@code dB [i2, K·o2]} (column {@code k·o2 + d} is column d of {@code dB_k}), both
 * starting at zero, so the initial output is the host's and the gradients are those of A and B.
 * AdamW's decay pulls the offsets (not the factors) toward zero. {@code x·(A_k ⊗ B_k)} is applied
 * without the Kronecker product: x as {@code X [N, 1, i1, i2]}, {@code T_k = X·B_k} in one
 * broadcast MatMul, then {@code Σ_k A_kᵀ·T_k} as one MatMul with the stacked Aᵀ on the left.
 */
public final class SokaKind implements LinearUpdateKind {
  /** The rule choosing K by the energy threshold. */
  public static final String ENERGY = "energy";
  /** The rule choosing K at the spectrum's elbow. */
  public static final String ELBOW = "elbow";
  /** The rule keeping the fewer of the energy and elbow counts (the default). */
  public static final String BOTH = "both";

  /** Decompositions by host weight (the same immutable tensor in every variant's graph), then by split. */
  private static final Map<TensorProto, Map<String, KroneckerSvd.Decomposition>> CACHE =
      Collections.synchronizedMap(new WeakHashMap<>());

  @Override
  public String id() {
    return "soka";
  }

  @Override
  public String displayName() {
    return "SoKA";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Soka";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("inFactor", -1, -1, Integer.MAX_VALUE,
            "i1, the input side of A (in = i1·i2): -1 for the near-square split, else a divisor of every site's input width"),
        AdapterOption.integer("outFactor", -1, -1, Integer.MAX_VALUE,
            "o1, the output side of A (out = o1·o2): -1 for the near-square split, else a divisor of every site's output width"),
        AdapterOption.choice("rule", BOTH, List.of(BOTH, ENERGY, ELBOW),
            "how many Kronecker terms K: both (the fewer of energy and elbow), energy (smallest K keeping that share of Σσ²) or elbow (the spectrum's knee)"),
        AdapterOption.number("energy", 0.9, 0, 1, "the share of the spectrum's energy Σσ² the kept terms hold (rules energy and both)"),
        AdapterOption.integer("maxTerms", 8, 1, 4096, "the most Kronecker terms K a site keeps"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  /** The Kronecker split of a site: {@code in = i1·i2}, {@code out = o1·o2}. */
  public record Split(int i1, int i2, int o1, int o2) {
    /** The split the declaration's options give at {@code site} (the options checked to divide its widths). */
    public static Split of(AdapterSpec spec, LinearSite site) {
      long i1 = side(site.in(), spec.intOption("inFactor"));
      long o1 = side(site.out(), spec.intOption("outFactor"));
      return new Split((int) i1, (int) (site.in() / i1), (int) o1, (int) (site.out() / o1));
    }

    private static long side(long width, int factor) {
      return factor > 0 ? factor : LoKrKind.factorization(width, -1)[0];
    }

    String key() {
      return i1 + "x" + i2 + "," + o1 + "x" + o2;
    }
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> out = new ArrayList<>();
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      int errors = out.size();
      for (String option : List.of("inFactor", "outFactor")) {
        int factor = spec.intOption(option);
        long width = option.equals("inFactor") ? site.in() : site.out();
        if (factor == 0 || factor > 0 && width % factor != 0) {
          out.add(Diagnostic.of(ErrorCode.SOKA_FACTOR_MISMATCH, spec.source(), option, option, factor,
              option.equals("inFactor") ? "input" : "output", width, site.node(), width));
        }
      }
      if (out.size() > errors) {
        continue;
      }
      @Nullable String why = unreadable(graph, site);
      if (why == null && decomposition(spec, site, graph).sigma()[0] == 0) {
        why = "its weight '" + site.weight() + "' is all zeros, so its Kronecker-product SVD has no term to train";
      }
      if (why != null) {
        out.add(Diagnostic.of(ErrorCode.SOKA_SITE_UNSUPPORTED, spec.source(), null, site.node(), why));
      }
    }
    return out;
  }

  /** Why the compiler cannot read the dense float weight of {@code site}, or null when it can. */
  static @Nullable String unreadable(Graph graph, LinearSite site) {
    if (site.int8() != null) {
      return "its weight '" + site.weight() + "' is int8 (MatMulInteger) and the kind reads the dense weight";
    }
    TensorProto t = graph.initializers().get(site.weight());
    if (t == null) {
      return "its weight '" + site.weight() + "' is not an initializer of the host";
    }
    int elem = t.getDataType();
    if (elem != TensorType.FLOAT && elem != TensorType.DOUBLE) {
      return "its weight '" + site.weight() + "' is " + TensorType.elemTypeName(elem) + ", the kind reads float32 or float64";
    }
    long count = Tensors.elementCount(t);
    long stored = t.hasRawData() ? t.getRawData().size() / (elem == TensorType.FLOAT ? 4 : 8)
        : elem == TensorType.FLOAT ? t.getFloatDataCount() : t.getDoubleDataCount();
    if (count != site.in() * site.out() || stored != count) {
      return "the values of its weight '" + site.weight() + "' are not in the host file (" + stored + " of " + count
          + " stored; external data is not read at compile time)";
    }
    return null;
  }

  /** The Kronecker-product SVD of the site's weight as {@code [in, out]}, computed once per weight and split. */
  public static KroneckerSvd.Decomposition decomposition(AdapterSpec spec, LinearSite site, Graph graph) {
    Split split = Split.of(spec, site);
    TensorProto t = graph.initializers().get(site.weight());
    Map<String, KroneckerSvd.Decomposition> bySplit = CACHE.computeIfAbsent(t, k -> new java.util.concurrent.ConcurrentHashMap<>());
    return bySplit.computeIfAbsent(split.key(), k -> {
      double[] w = weightInOut(site, t);
      return KroneckerSvd.decompose(w, split.i1(), split.i2(), split.o1(), split.o2());
    });
  }

  /** The site's host weight {@code t} as {@code [in, out]} doubles (transposed where the site reads it {@code [out, in]}). */
  private static double[] weightInOut(LinearSite site, TensorProto t) {
    double[] w = Tensors.readDoubles(t);
    return site.outFirst() ? transpose(w, (int) site.out(), (int) site.in()) : w;
  }

  /** The number of terms the declaration keeps at {@code site}. */
  public static int terms(AdapterSpec spec, KroneckerSvd.Decomposition d) {
    KroneckerSvd.Rule rule = KroneckerSvd.Rule.valueOf(spec.stringOption("rule").toUpperCase(Locale.ROOT));
    return KroneckerSvd.terms(d.sigma(), rule, spec.doubleOption("energy"), spec.intOption("maxTerms"));
  }

  private static double[] transpose(double[] w, int rows, int cols) {
    double[] t = new double[w.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        t[j * rows + i] = w[i * cols + j];
      }
    }
    return t;
  }

  /** The principal factors of the first K terms, stacked as the parameters are: {@code A0 [K·i1, o1]}, {@code B0 [i2, K·o2]}. */
  private record Principal(String a, String b, int terms) {
    static Principal add(Graph g, String base, int elem, AdapterSpec spec, LinearSite site) {
      Split s = Split.of(spec, site);
      KroneckerSvd.Decomposition d = decomposition(spec, site, g);
      int k = SokaKind.terms(spec, d);
      double[] a = new double[k * s.i1() * s.o1()];
      double[] b = new double[s.i2() * k * s.o2()];
      for (int t = 0; t < k; t++) {
        System.arraycopy(d.a()[t], 0, a, t * s.i1() * s.o1(), s.i1() * s.o1());
        for (int r = 0; r < s.i2(); r++) {
          System.arraycopy(d.b()[t], r * s.o2(), b, r * k * s.o2() + t * s.o2(), s.o2());
        }
      }
      String a0 = g.constant(base + "/A0", Tensors.floats("A0", elem, List.of((long) k * s.i1(), (long) s.o1()), a));
      String b0 = g.constant(base + "/B0", Tensors.floats("B0", elem, List.of((long) s.i2(), (long) k * s.o2()), b));
      return new Principal(a0, b0, k);
    }
  }

  /**
   * {@code W − Σ_{k<K} A0_k ⊗ B0_k} in the layout, type and shape of the host weight (its {@code [out,
   * in]} transpose where the site reads it so), computed in double precision from the host's values.
   */
  static TensorProto residual(AdapterSpec spec, LinearSite site, Graph g, int k, String name) {
    Split s = Split.of(spec, site);
    KroneckerSvd.Decomposition d = decomposition(spec, site, g);
    TensorProto host = g.initializers().get(site.weight());
    double[] w = weightInOut(site, host);
    int out = s.o1() * s.o2();
    for (int t = 0; t < k; t++) {
      double[] at = d.a()[t];
      double[] bt = d.b()[t];
      for (int a = 0; a < s.i1(); a++) {
        for (int c = 0; c < s.o1(); c++) {
          double v = at[a * s.o1() + c];
          for (int b = 0; b < s.i2(); b++) {
            int row = (a * s.i2() + b) * out + c * s.o2();
            for (int e = 0; e < s.o2(); e++) {
              w[row + e] -= v * bt[b * s.o2() + e];
            }
          }
        }
      }
    }
    if (site.outFirst()) {
      w = transpose(w, (int) site.in(), (int) site.out());
    }
    return Tensors.floats(name, host.getDataType(), host.getDimsList(), w);
  }

  /**
   * Whether the site's node is the only reader of its host weight (and the weight is no graph
   * output), so that weight can give way to the residual without changing any other output.
   */
  private static boolean soleReader(Graph g, LinearSite site) {
    if (g.outputs().contains(site.weight())) {
      return false;
    }
    Node node = LinearAdapters.node(g, site);
    List<Node> readers = g.readers(site.weight());
    return readers.size() == 1 && readers.get(0) == node && Collections.frequency(node.inputs(), site.weight()) == 1;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    Graph g = placement.graph();
    for (Site each : sites) {
      LinearSite site = (LinearSite) each;
      Split s = Split.of(spec, site);
      LinearAdapters.Input in = LinearAdapters.input(site, placement, 0, "soka");
      String base = in.base();
      Principal p = Principal.add(g, base, placement.elemType(), spec, site);
      int k = p.terms();
      String da = placement.parameter(site, "soka_dA", (long) k * s.i1(), s.o1()).init(Init.ZEROS, 0).save(key(site, "soka_dA")).add();
      String db = placement.parameter(site, "soka_dB", s.i2(), (long) k * s.o2()).init(Init.ZEROS, 0).save(key(site, "soka_dB")).add();
      String a = g.op(base + "/Add_A", "Add", List.of(p.a(), da));
      String b = g.op(base + "/Add_B", "Add", List.of(p.b(), db));
      // The site's node the only reader of W: it reads the residual W − Σ A0⊗B0, folded here (no
      // subtraction per step); else the principal part is subtracted from the output. The update
      // graph keeps W: its outputs are ΔW alone, which reads W's decomposition after the forward
      // part is pruned.
      boolean folded = placement.variant() != GraphVariant.UPDATE && soleReader(g, site);
      if (folded) {
        String residual = g.freshValue(base + "/W_res");
        g.addInitializer(residual(spec, site, g, k, residual), false);
        g.replaceUses(site.weight(), residual, List.of());
      }
      String y = site.output(g);
      int before = g.nodes().size();
      String shape = g.op(base + "/Shape", "Shape", List.of(y));
      String update = apply(g, base + "/kron", in.value(), a, b, s, k, shape);
      if (!folded) {
        String principal = apply(g, base + "/kron0", in.value(), p.a(), p.b(), s, k, shape);
        update = g.op(base + "/Sub", "Sub", List.of(update, principal));
      }
      if (in.outputScale() != 1) {
        update = g.op(base + "/Mul", "Mul", List.of(update, placement.scalar(base + "/scaling", in.outputScale())));
      }
      String out = g.op(base + "/Add", "Add", List.of(y, update));
      // The nodes added here read y itself (the output's shape, the sum); every other reader takes the sum.
      g.replaceUses(y, out, new ArrayList<>(g.nodes().subList(before, g.nodes().size())));
    }
  }

  /** The saved key of a parameter: Graft's own, in PEFT's module-path form. */
  private static String key(LinearSite site, String suffix) {
    return Placement.peftKey(site, suffix);
  }

  /**
   * {@code x·Σ_k A_k ⊗ B_k} shaped as {@code shape} ({@code [.., out]}) without the product and
   * without transposing an activation: {@code X [N, 1, i1, i2]·B [K, i2, o2]} (broadcast) →
   * {@code [N, K, i1, o2]} → {@code [N, K·i1, o2]}, then {@code Aᵀ [o1, K·i1]} on the left →
   * {@code [N, o1, o2]} → {@code shape}. Only the small factors are transposed. (Measured on one
   * 384→384 site split 16·24, forward and backward: about half the time of transposing the
   * activations, at every K from 1 to 8; docs/papers/soka.md.)
   */
  public static String apply(Graph g, String base, String x, String a, String b, Split s, int k, String shape) {
    String x4 = g.op(base + "/Reshape_x", "Reshape", List.of(x,
        g.longs(base + "/shape_x", List.of(-1L, 1L, (long) s.i1(), (long) s.i2()))));
    String b3 = g.op(base + "/Reshape_B", "Reshape", List.of(b,
        g.longs(base + "/shape_b", List.of((long) s.i2(), (long) k, (long) s.o2()))));
    String bk = g.op(base + "/Transpose_B", "Transpose", List.of(b3), Node.attr("perm", List.of(1L, 0L, 2L)));
    String t = g.op(base + "/MatMul_B", "MatMul", List.of(x4, bk));
    String t3 = g.op(base + "/Reshape_t", "Reshape", List.of(t,
        g.longs(base + "/shape_t", List.of(-1L, (long) k * s.i1(), (long) s.o2()))));
    String at = g.op(base + "/Transpose_A", "Transpose", List.of(a), Node.attr("perm", List.of(1L, 0L)));
    String z = g.op(base + "/MatMul_A", "MatMul", List.of(at, t3));
    return g.op(base + "/Reshape_y", "Reshape", List.of(z, shape));
  }

  /** {@code Σ_k A_k ⊗ B_k [in, out]} from the stacked factors {@code A [K·i1, o1]}, {@code B [i2, K·o2]}. */
  public static String kroneckerSum(Graph g, String base, String a, String b, Split s, int k) {
    String a5 = g.op(base + "/Reshape_A", "Reshape", List.of(a,
        g.longs(base + "/shape_A", List.of((long) k, (long) s.i1(), 1L, (long) s.o1(), 1L))));
    String b3 = g.op(base + "/Reshape_B", "Reshape", List.of(b,
        g.longs(base + "/shape_B", List.of((long) s.i2(), (long) k, (long) s.o2()))));
    String bt = g.op(base + "/Transpose_B", "Transpose", List.of(b3), Node.attr("perm", List.of(1L, 0L, 2L)));
    String b5 = g.op(base + "/Reshape_B5", "Reshape", List.of(bt,
        g.longs(base + "/shape_B5", List.of((long) k, 1L, (long) s.i2(), 1L, (long) s.o2()))));
    String sum = g.op(base + "/ReduceSum", "ReduceSum", List.of(g.op(base + "/Mul", "Mul", List.of(a5, b5)),
        g.longs(base + "/axes", List.of(0L))), Node.attr("keepdims", 0L));
    return g.op(base + "/Reshape_W", "Reshape", List.of(sum,
        g.longs(base + "/shape_W", List.of((long) s.i1() * s.i2(), (long) s.o1() * s.o2()))));
  }

  /** {@code ΔW = Σ_k (A0_k + dA_k) ⊗ (B0_k + dB_k) − Σ_k A0_k ⊗ B0_k}. */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "soka") + "/delta";
    int elem = graph.typeOrThrow(tensors.hostWeight()).elemType();
    Split s = Split.of(spec, site);
    Principal p = Principal.add(graph, base, elem, spec, site);
    String a = graph.op(base + "/Add_A", "Add", List.of(p.a(), tensors.parameter("soka_dA")));
    String b = graph.op(base + "/Add_B", "Add", List.of(p.b(), tensors.parameter("soka_dB")));
    String trained = kroneckerSum(graph, base + "/kron", a, b, s, p.terms());
    String principal = kroneckerSum(graph, base + "/kron0", p.a(), p.b(), s, p.terms());
    return WeightUpdate.delta(graph.op(base + "/Sub", "Sub", List.of(trained, principal)));
  }
}
