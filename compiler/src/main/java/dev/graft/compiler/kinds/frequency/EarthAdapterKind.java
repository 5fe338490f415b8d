package dev.graft.compiler.kinds.frequency;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.OutputSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.bottleneck.Bottlenecks;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Earth-Adapter (Hu et al., "Earth-Adapter: Bridge the Geospatial Domain Gaps with Mixture of
 * Frequency Adaptation", 2025): a mixture of frequency adaptation on the patch tokens of a vision
 * transformer layer. The layer output's tokens {@code x [batch, T, D]} (T = extra tokens + an
 * {@code h×w} patch grid) are split by a fixed 2-D DFT low-pass over the grid ({@link PatchFilter})
 * into {@code low = IDFT2(M ⊙ DFT2(x))} and {@code high = x − low}; three bottleneck adapters take
 * the whole features, the low and the high part, and a per-token router mixes them:
 *
 * <pre>
 *   g = softmax(x·W_r + b_r)                         [batch, T, 3]
 *   x' = x + g_0·A_spatial(x) + g_1·A_low(low) + g_2·A_high(high),   A(z) = up(act(down(z)))
 * </pre>
 *
 * <p>As in the reference implementation ({@code VisionXLab/Earth-Adapter}, {@code
 * earth_adapter.forward}) the extra tokens (the class token) are not adapted: the mixture is
 * multiplied by a constant {@code [T, 1]} that is 0 on them, so they pass unchanged. No DFT op is
 * emitted: the filter is a constant {@code [T, T]} matrix ({@link PatchFilter#tokenMatrix}, the
 * identity on the extra tokens) applied by one MatMul over the token axis; the default mask is the
 * reference's centred box with its {@code cutoff_ratio} default 0.3. Sites are linear layers (default:
 * each layer's feed-forward output dense). With {@code input = block} (the default, the reference's
 * {@code forward_features}: {@code x = blk(x)}, then the adapter) {@code x} is the block's output, the
 * residual sum that the site's output (bias included, after a layer scale if any) is added into
 * ({@link #residualSum}), and {@code x'} replaces it for all of its readers; such a declaration is
 * placed alone, never in a composition block. With {@code input = output}, {@code x} is the site's
 * output itself, composable as every {@link ComposableKind}. Parameters per site: {@code
 * <module>.earth_adapter.<spatial|low|high>.{down,up}.{weight,bias}} (as {@link Bottlenecks#branch}) and {@code
 * <module>.earth_adapter.router.{weight,bias}} ({@code [D, 3]}, {@code [3]}, zero: the experts
 * start equally mixed).
 */
public final class EarthAdapterKind implements ComposableKind {
  static final String NAME = "earth_adapter";
  /** The feed-forward output dense of each transformer layer (a ViT's {@code /vit/encoder/layer.N/output/dense/MatMul}). */
  static final String DEFAULT_TARGET = ".*/layer\\.\\d+/output/dense/MatMul";
  /** Placement {@code input = block}: on the residual sum the target's output joins (the default). */
  static final String BLOCK = "block";
  /** Placement {@code input = output}: on the target's output, bias included. */
  static final String OUTPUT = "output";
  static final List<String> INPUTS = List.of(BLOCK, OUTPUT);
  /** The experts, in router order. */
  static final List<String> EXPERTS = List.of("spatial", "low", "high");

  @Override
  public String id() {
    return "earth";
  }

  @Override
  public String displayName() {
    return "Earth-Adapter";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.EarthAdapter";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.number("cutoff", 0.3, 0, 2,
            "low-pass cutoff: box keeps signed frequencies −c..c−1 per axis, c = ⌊min(h, w)·cutoff/2⌋ (the reference's"
            + " cutoff_ratio); radial and square take it as a normalized radius (1 is each axis's Nyquist frequency)"),
        AdapterOption.choice("mask", "box", PatchFilter.MASKS,
            "box: the reference's centred box, real part taken; radial keeps √((2fy/h)² + (2fx/w)²) ≤ cutoff,"
            + " square keeps max(2fy/h, 2fx/w) ≤ cutoff"),
        Bottlenecks.reduction(16),
        Bottlenecks.nonlinearity("relu", Bottlenecks.NONLINEARITIES),
        Bottlenecks.initWeights(),
        AdapterOption.integer("gridHeight", 0, 0, 4096, "patch grid rows h; 0 infers a square grid"),
        AdapterOption.integer("gridWidth", 0, 0, 4096, "patch grid columns w; 0 infers a square grid"),
        AdapterOption.integer("extraTokens", -1, -1, 4096,
            "tokens before the grid (class token) that pass unfiltered; -1 infers 1 + h·w, then h·w"),
        AdapterOption.choice("input", BLOCK, INPUTS,
            "block: the adapter reads the residual sum the target's output is added into (the block's output, as the"
            + " reference) and replaces it; output: it reads the target's output (bias included) and replaces that"));
  }

  @Override
  public String siteDescription() {
    return "linear output";
  }

  @Override
  public List<OutputSite> candidates(Graph graph) {
    return OutputSite.find(graph);
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> errors = new ArrayList<>();
    boolean block = spec.stringOption("input").equals(BLOCK);
    for (Site s : sites) {
      OutputSite site = (OutputSite) s;
      String value = site.value();
      if (block) {
        Optional<String> sum = residualSum(graph, value);
        if (sum.isEmpty()) {
          errors.add(Diagnostic.of(ErrorCode.EARTH_NO_RESIDUAL, spec.source(), "input", displayName(), site.node(),
              value, readers(graph, value)));
          continue;
        }
        value = sum.get();
      }
      Optional<PatchFilter> grid = filter(spec, graph, value);
      if (grid.isEmpty()) {
        errors.add(Diagnostic.of(ErrorCode.EARTH_NO_PATCH_GRID, spec.source(), "target", displayName(), site.node(),
            typeOf(graph, value), asked(spec)));
        continue;
      }
      PatchFilter f = grid.get();
      double cutoff = spec.doubleOption("cutoff");
      String mask = spec.stringOption("mask");
      String size = f.height() + "×" + f.width();
      if (f.kept(cutoff, mask) == 0) {
        errors.add(Diagnostic.of(ErrorCode.EARTH_BOX_KEEPS_NONE, spec.source(), "cutoff", displayName(), cutoff, size,
            String.format(java.util.Locale.ROOT, "%.4g", 2.0 / Math.min(f.height(), f.width()))));
      } else if (f.keepsAll(cutoff, mask)) {
        errors.add(Diagnostic.of(ErrorCode.EARTH_CUTOFF_KEEPS_ALL, spec.source(), "cutoff", displayName(), cutoff, mask,
            size, largestLeavingOne(f, cutoff, mask)));
      }
    }
    return errors.stream().distinct().toList();
  }

  /**
   * Where {@code value} (a target's output, bias included) joins the residual stream: the output of
   * the one {@code Add} that reads it (or its layer scale, {@link #scaled}) beside a computed value
   * (not an initializer or a Constant) and whose sum has the value's type. Empty when there is not
   * exactly one such Add.
   */
  static Optional<String> residualSum(Graph graph, String value) {
    String v = scaled(graph, value);
    List<String> sums = new ArrayList<>();
    for (Node n : graph.nodes()) {
      if (isResidualAdd(graph, n, v)) {
        sums.add(n.output(0));
      }
    }
    return sums.size() == 1 ? Optional.of(sums.get(0)) : Optional.empty();
  }

  /**
   * {@code value} after its layer scale (DINOv2's {@code ls2}, the block the reference adapts): while
   * its one reader is a {@code Mul} by an initializer or a Constant, that product; else {@code value}.
   */
  private static String scaled(Graph graph, String value) {
    String v = value;
    while (true) {
      List<Node> readers = graph.readers(v);
      if (readers.size() != 1) {
        return v;
      }
      Node n = readers.get(0);
      if (!n.domain().isEmpty() || !n.opType().equals("Mul") || n.inputs().size() != 2) {
        return v;
      }
      String other = n.input(0).equals(v) ? n.input(1) : n.input(0);
      Node p = graph.producer(other);
      if (!graph.initializers().containsKey(other) && (p == null || !p.opType().equals("Constant"))) {
        return v;
      }
      v = n.output(0);
    }
  }

  private static boolean isResidualAdd(Graph graph, Node n, String value) {
    if (!n.domain().isEmpty() || !n.opType().equals("Add") || n.inputs().size() != 2 || !n.inputs().contains(value)) {
      return false;
    }
    String other = n.input(0).equals(value) ? n.input(1) : n.input(0);
    Node p = graph.producer(other);
    if (other.equals(value) || graph.initializers().containsKey(other) || (p != null && p.opType().equals("Constant"))) {
      return false;
    }
    TensorType t = graph.types().get(value);
    return t != null && t.equals(graph.types().get(n.output(0)));
  }

  /** What reads {@code value} (after its layer scale), for GRAFT362: each reader's name and op, the residual Adds marked. */
  private static String readers(Graph graph, String target) {
    String value = scaled(graph, target);
    List<String> found = new ArrayList<>();
    long residuals = 0;
    for (Node n : graph.readers(value)) {
      boolean residual = isResidualAdd(graph, n, value);
      residuals += residual ? 1 : 0;
      found.add(n.name() + " (" + n.opType() + (residual ? ", a residual sum" : "") + ")");
    }
    if (found.isEmpty()) {
      return "no node reads it";
    }
    return residuals + " residual sums among its readers " + found;
  }

  /** The grid of a value {@code [batch, T, D]}: T static and a grid as the options ask; empty otherwise. */
  static Optional<PatchFilter> filter(AdapterSpec spec, Graph graph, String value) {
    TensorType t = graph.types().get(value);
    if (t == null || !t.hasRank() || t.rank() != 3) {
      return Optional.empty();
    }
    Dim tokens = t.dim(1);
    if (!tokens.isKnown()) {
      return Optional.empty();
    }
    return PatchFilter.of(tokens.size(), spec.intOption("extraTokens"), spec.intOption("gridHeight"),
        spec.intOption("gridWidth"));
  }

  private static String typeOf(Graph graph, String value) {
    TensorType t = graph.types().get(value);
    return "'" + value + "' " + (t == null ? "of unknown shape" : t.toString());
  }

  private static String asked(AdapterSpec spec) {
    int h = spec.intOption("gridHeight");
    int w = spec.intOption("gridWidth");
    int e = spec.intOption("extraTokens");
    if (h == 0 && w == 0 && e < 0) {
      return "";
    }
    return " (asked for grid " + (h == 0 ? "?" : h) + "×" + (w == 0 ? "?" : w) + " after "
        + (e < 0 ? "0 or 1" : e) + " extra tokens)";
  }

  /**
   * Where high stops being empty: the largest radius below which some frequency lies outside the
   * mask, or for the box the cutoff at which its half-width c reaches {@code cutoff}'s.
   */
  private static String largestLeavingOne(PatchFilter f, double cutoff, String mask) {
    if (mask.equals("box")) {
      return String.format(java.util.Locale.ROOT, "%.4g", 2.0 * f.boxHalfWidth(cutoff) / Math.min(f.height(), f.width()));
    }
    double most = 0;
    for (int ky = 0; ky < f.height(); ky++) {
      for (int kx = 0; kx < f.width(); kx++) {
        double y = 2.0 * Math.min(ky, f.height() - ky) / f.height();
        double x = 2.0 * Math.min(kx, f.width() - kx) / f.width();
        most = Math.max(most, mask.equals("square") ? Math.max(y, x) : Math.sqrt(x * x + y * y));
      }
    }
    return String.format(java.util.Locale.ROOT, "%.4g", most);
  }

  /** {@code input = output} acts on the target's output as a function; {@code block} replaces the residual sum, placed alone. */
  @Override
  public boolean composable(AdapterSpec spec) {
    return spec.stringOption("input").equals(OUTPUT);
  }

  @Override
  public String whyPlacedAlone(AdapterSpec spec) {
    return displayName() + " with input = block, which reads and replaces the residual sum its target's output joins,"
        + " not that output; give it input = output to compose it";
  }

  /**
   * {@code input = output}: as every composable kind, on the target's output. {@code block}: on the
   * residual sum the target's output joins ({@link #residualSum}); every reader of that sum reads
   * the adapted one.
   */
  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    if (composable(spec)) {
      ComposableKind.super.place(spec, sites, placement);
      return;
    }
    Graph g = placement.graph();
    for (Site s : sites) {
      OutputSite site = (OutputSite) s;
      String sum = residualSum(g, site.value()).orElseThrow(() -> new IllegalStateException(displayName() + " at "
          + site.node() + ": '" + site.value() + "' no longer joins one residual sum (checked by diagnose on the host;"
          + " an adapter placed before it rewired the output): " + readers(g, site.value())));
      int first = g.nodes().size();
      String out = mixture(spec, site, sum, sum, site.size(), placement);
      Bottlenecks.rewire(g, sum, out, first);
    }
  }

  @Override
  public String apply(AdapterSpec spec, Site s, String value, long width, Placement placement) {
    if (!(s instanceof OutputSite site)) {
      throw new IllegalArgumentException(displayName() + " goes on a linear layer's output; got site " + s);
    }
    return mixture(spec, site, site.value(), value, width, placement);
  }

  /**
   * {@code x + P ⊙ mixture(x)} for {@code x = value}; {@code typed} is the host value whose type
   * gives the grid ({@code value} itself, or what a composition block made of it).
   */
  private String mixture(AdapterSpec spec, OutputSite site, String typed, String value, long width, Placement placement) {
    Graph g = placement.graph();
    PatchFilter f = filter(spec, g, typed).orElseThrow(() -> new IllegalArgumentException(
        displayName() + " at " + site.node() + ": no patch grid (checked by diagnose)"));
    double cutoff = spec.doubleOption("cutoff");
    String mask = spec.stringOption("mask");
    String base = "/" + site.modulePath().replace('.', '/') + "/" + NAME;
    List<Long> dims = List.of((long) f.tokens(), (long) f.tokens());
    String lowFilter = g.constant(base + "/low_pass", Tensors.floats("low_pass", placement.elemType(), dims,
        f.tokenMatrix(cutoff, mask, false)));
    String highFilter = g.constant(base + "/high_pass", Tensors.floats("high_pass", placement.elemType(), dims,
        f.tokenMatrix(cutoff, mask, true)));
    String low = g.op(base + "/low/Filter", "MatMul", List.of(lowFilter, value));
    String high = g.op(base + "/high/Filter", "MatMul", List.of(highFilter, value));
    String nonlinearity = spec.stringOption("nonlinearity");
    String key = NAME + ".";
    List<String> experts = List.of(
        Bottlenecks.branch(placement, site, key + "spatial", key + "spatial", value, width, width, spec, nonlinearity),
        Bottlenecks.branch(placement, site, key + "low", key + "low", low, width, width, spec, nonlinearity),
        Bottlenecks.branch(placement, site, key + "high", key + "high", high, width, width, spec, nonlinearity));

    long n = EXPERTS.size();
    String routerW = placement.parameter(site, key + "router.weight", width, n).init(Init.ZEROS, 0)
        .saveTransposed(Placement.peftKey(site, key + "router.weight")).add();
    String routerB = placement.parameter(site, key + "router.bias", n).init(Init.ZEROS, 0).noDecay()
        .save(Placement.peftKey(site, key + "router.bias")).add();
    String logits = g.op(base + "/router/Add", "Add",
        List.of(g.op(base + "/router/MatMul", "MatMul", List.of(value, routerW)), routerB));
    String weights = g.op(base + "/router/Softmax", "Softmax", List.of(logits), attr("axis", -1L));
    String axis = g.longs(base + "/router/axis", List.of(-1L));
    String sum = null;
    for (int k = 0; k < n; k++) {
      String e = EXPERTS.get(k);
      String gk = g.op(base + "/router/Slice_" + e, "Slice", List.of(weights,
          g.longs(base + "/router/start_" + e, List.of((long) k)), g.longs(base + "/router/end_" + e, List.of(k + 1L)), axis));
      String term = g.op(base + "/" + e + "/Mul", "Mul", List.of(gk, experts.get(k)));
      sum = sum == null ? term : g.op(base + "/Sum_" + e, "Add", List.of(sum, term));
    }
    if (f.extraTokens() > 0) {
      double[] patches = new double[f.tokens()];
      java.util.Arrays.fill(patches, f.extraTokens(), patches.length, 1);
      String onPatches = g.constant(base + "/patch_tokens", Tensors.floats("patch_tokens", placement.elemType(),
          List.of((long) f.tokens(), 1L), patches));
      sum = g.op(base + "/PatchTokens/Mul", "Mul", List.of(sum, onPatches));
    }
    return g.op(base + "/Add", "Add", List.of(value, sum));
  }
}
