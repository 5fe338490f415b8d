package dev.graft.compiler.kinds.mixture;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.bottleneck.Bottlenecks;
import dev.graft.compiler.kinds.lora.LinearAdapters;
import dev.graft.compiler.kinds.lora.LoraKind;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Pattern;

/**
 * Mixture of LoRA experts: beside each chosen linear site {@code y = x·W (+ b)} it adds {@code
 * scaling · Σ_e g_e(x) · (dropout(x)·A_e)·B_e}, E LoRA experts ({@code A_e [in, r]}
 * kaiming-uniform, {@code B_e [r, out]} zero, {@code scaling = alpha / r}) weighted per token by a
 * learned router with logits {@code l = x·W_r} ({@code W_r [in, E]}, normal(0, 0.02), no bias,
 * as in Switch Transformers and Mixtral; the router reads x without dropout).
 *
 * <ul>
 *   <li>{@code router = "soft"}: {@code g = softmax(l)}.
 *   <li>{@code router = "top_k"}: {@code g = softmax(l)} renormalized over the k largest logits
 *       of the token (the others weigh 0), which is the softmax over the kept logits; the training
 *       step adds the load-balancing loss {@code E · Σ_e f_e · P_e} (Switch Transformers,
 *       Mixtral's {@code load_balancing_loss_func}) times {@code auxLossWeight}, one term per site:
 *       {@code f_e} the fraction of tokens whose top k includes e (a count, not differentiated),
 *       {@code P_e} the mean of {@code softmax(l)_e}, both over the real tokens ({@code
 *       attention_mask} = 1) where the host has that input and the site's input is {@code [batch,
 *       sequence, in]}, else over every row. With {@code topK} equal to the expert count every
 *       expert is kept: the gates are the soft router's and no loss is added (it would be the
 *       constant E).
 * </ul>
 *
 * <p>A logit is kept when fewer than k logits of its token are strictly greater (a pairwise
 * comparison, {@code E²} per token, with no TopK op): exactly the top k when no two logits tie,
 * and every tied logit at the boundary otherwise. The selection is piecewise constant, so the
 * gradient is that of the chosen experts' softmax.
 *
 * <p>The experts of a site are batched: one stacked {@code A [in, E·r]} and one {@code B [E·r,
 * out]}, columns (rows) {@code e·r … e·r + r − 1} being expert e's, so the update is {@code
 * ((x·A) ⊙ (g·R))·B} with R {@code [E, E·r]} the constant that repeats each gate r times: two
 * MatMuls of LoRA's size times E and a small {@code [.., E]·[E, E·r]} one, not E pairs.
 *
 * <p>{@code expertsPerLayer} gives each selected layer its own expert count (the i-th entry for
 * the i-th selected layer in ascending order), overriding {@code experts}.
 */
public final class MixtureOfLoraKind implements ComposableKind {
  public static final int MAX_EXPERTS = 256;
  /** Values of option {@code router}. */
  public static final String SOFT = "soft";
  public static final String TOP_K = "top_k";
  /** The name of the adapter's nodes and parameters under a site's module path. */
  static final String NAME = "mixture_lora";

  @Override
  public String id() {
    return "mixture_lora";
  }

  @Override
  public String displayName() {
    return "Mixture of LoRA experts";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.MixtureOfLora";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, LoraKind.MAX_RANK, "rank r of each expert"),
        AdapterOption.positive("alpha", 16, "scale numerator: each expert's update is multiplied by alpha / r"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the experts' input in training"),
        AdapterOption.integer("experts", 4, 1, MAX_EXPERTS, "number of experts E at every site"),
        AdapterOption.integers("expertsPerLayer", 1, MAX_EXPERTS,
            "expert count of each selected layer, in ascending layer order; overrides experts when not empty"),
        AdapterOption.choice("router", SOFT, List.of(SOFT, TOP_K),
            "soft: softmax over every expert; top_k: softmax over the k largest logits, with a load-balancing loss"),
        AdapterOption.integer("topK", 2, 1, MAX_EXPERTS, "experts kept per token by the top_k router"),
        AdapterOption.number("auxLossWeight", 0.01, 0, Double.POSITIVE_INFINITY,
            "weight of each site's load-balancing loss in the training loss (top_k router)"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> errors = new ArrayList<>();
    List<Integer> perLayer = perLayer(spec);
    if (!perLayer.isEmpty()) {
      for (Site s : sites) {
        if (s.layer().isEmpty()) {
          errors.add(Diagnostic.of(ErrorCode.MIXTURE_SITE_WITHOUT_LAYER, spec.source(), "expertsPerLayer",
              displayName(), s.node()));
          return errors;
        }
      }
      List<Integer> layers = layersOf(sites);
      if (layers.size() != perLayer.size()) {
        errors.add(Diagnostic.of(ErrorCode.MIXTURE_EXPERTS_PER_LAYER_LENGTH, spec.source(), "expertsPerLayer",
            displayName(), perLayer.size(), layers.size(), layers));
        return errors;
      }
    }
    if (spec.stringOption("router").equals(TOP_K)) {
      int k = spec.intOption("topK");
      if (perLayer.isEmpty()) {
        int experts = spec.intOption("experts");
        if (k > experts) {
          errors.add(Diagnostic.of(ErrorCode.MIXTURE_TOP_K_TOO_LARGE, spec.source(), "topK", displayName(), k, experts,
              "every site", experts));
        }
      } else {
        List<Integer> layers = layersOf(sites);
        int fewest = perLayer.stream().mapToInt(Integer::intValue).min().orElseThrow();
        for (int i = 0; i < layers.size(); i++) {
          if (k > perLayer.get(i)) {
            errors.add(Diagnostic.of(ErrorCode.MIXTURE_TOP_K_TOO_LARGE, spec.source(), "topK", displayName(), k,
                perLayer.get(i), "layer " + layers.get(i), fewest));
            break;
          }
        }
      }
    }
    return errors;
  }

  @SuppressWarnings("unchecked")
  private static List<Integer> perLayer(AdapterSpec spec) {
    return (List<Integer>) spec.options().getOrDefault("expertsPerLayer", List.of());
  }

  /** The distinct layer indices of {@code sites}, ascending. */
  private static List<Integer> layersOf(List<? extends Site> sites) {
    TreeSet<Integer> layers = new TreeSet<>();
    sites.forEach(s -> s.layer().ifPresent(layers::add));
    return List.copyOf(layers);
  }

  /**
   * The expert count at {@code site}: {@code experts}, or its layer's entry of {@code
   * expertsPerLayer}, the layers being those of every linear site of {@code graph} the
   * declaration selects (its target, or LoRA's default, and its layer filter), ascending.
   */
  static int experts(AdapterSpec spec, LinearSite site, Graph graph) {
    List<Integer> perLayer = perLayer(spec);
    if (perLayer.isEmpty()) {
      return spec.intOption("experts");
    }
    Pattern target = Pattern.compile(spec.target().isEmpty() ? LoraKind.DEFAULT_TARGET : spec.target());
    List<LinearSite> selected = LinearSite.find(graph).stream()
        .filter(s -> target.matcher(s.node()).matches())
        .filter(s -> spec.layers().isEmpty() || (s.layer().isPresent() && spec.layers().contains(s.layer().getAsInt())))
        .toList();
    List<Integer> layers = layersOf(selected);
    int index = layers.indexOf(site.layer().orElseThrow(
        () -> new IllegalArgumentException("expertsPerLayer at a site without a layer index: " + site.node())));
    if (index < 0 || layers.size() != perLayer.size()) {
      throw new IllegalStateException("expertsPerLayer " + perLayer + " does not fit the selected layers " + layers
          + " at " + site.node());
    }
    return perLayer.get(index);
  }

  @Override
  public String apply(AdapterSpec spec, Site s, String value, long width, Placement placement) {
    if (!(s instanceof LinearSite site)) {
      throw new IllegalArgumentException(displayName() + " reads a linear layer's input; got site " + s);
    }
    Graph g = placement.graph();
    int experts = experts(spec, site, g);
    int rank = spec.intOption("rank");
    long stacked = (long) experts * rank;
    LinearAdapters.Input in = LinearAdapters.input(site, placement, spec.doubleOption("dropout"), NAME);
    String x = spec.doubleOption("dropout") > 0 && placement.variant().trains()
        ? LinearAdapters.input(site, placement, 0, NAME + "/router").value() : in.value();
    String base = in.base();
    String router = placement.parameter(site, NAME + ".router", site.in(), experts).init(Init.NORMAL, 0.02)
        .saveTransposed(Placement.peftKey(site, NAME + ".router.weight")).add();
    String a = placement.parameter(site, NAME + ".lora_A", site.in(), stacked)
        .init(Init.KAIMING_UNIFORM, site.in()).saveTransposed(Placement.peftKey(site, NAME + ".lora_A.weight")).add();
    String b = placement.parameter(site, NAME + ".lora_B", stacked, width)
        .init(Init.ZEROS, 0).saveTransposed(Placement.peftKey(site, NAME + ".lora_B.weight")).add();

    String logits = g.op(base + "/router/MatMul", "MatMul", List.of(x, router));
    String probs = g.op(base + "/router/Softmax", "Softmax", List.of(logits), attr("axis", -1L));
    String gates = probs;
    if (spec.stringOption("router").equals(TOP_K) && spec.intOption("topK") < experts) {
      String kept = topK(placement, base + "/router/top_k", logits, spec.intOption("topK"));
      String keptProbs = g.op(base + "/router/top_k/Mul", "Mul", List.of(probs, kept));
      String sum = g.op(base + "/router/top_k/ReduceSum", "ReduceSum",
          List.of(keptProbs, g.longs(base + "/router/top_k/last", List.of(-1L))), attr("keepdims", 1L));
      gates = g.op(base + "/router/top_k/Div", "Div", List.of(keptProbs, sum));
      String loss = loadBalance(placement, base + "/router/load_balance", x, probs, kept, experts);
      placement.auxiliaryLoss(router + ".load_balance", loss, spec.doubleOption("auxLossWeight"));
    }
    String down = g.op(base + "/MatMul_A", "MatMul", List.of(in.value(), a));
    String spread = experts == 1 ? null : g.op(base + "/gates/MatMul", "MatMul",
        List.of(gates, g.constant(base + "/gates/repeat", repeat(placement.elemType(), experts, rank))));
    String weighted = g.op(base + "/gates/Mul", "Mul", List.of(down, spread == null ? gates : spread));
    String up = g.op(base + "/MatMul_B", "MatMul", List.of(weighted, b));
    String scaled = Bottlenecks.scaled(placement, base, up, spec.doubleOption("alpha") / rank * in.outputScale());
    return g.op(base + "/Add", "Add", List.of(value, scaled));
  }

  /** R {@code [E, E·r]}: {@code R[e, j] = 1} where {@code j / r = e}, else 0. */
  private static dev.graft.spec.onnx.Onnx.TensorProto repeat(int elemType, int experts, int rank) {
    double[] v = new double[experts * experts * rank];
    for (int e = 0; e < experts; e++) {
      for (int j = 0; j < rank; j++) {
        v[e * experts * rank + e * rank + j] = 1;
      }
    }
    return Tensors.floats("repeat", elemType, List.of((long) experts, (long) experts * rank), v);
  }

  /**
   * The top-k mask {@code [.., E]} of {@code logits}: 1 where fewer than k logits of the same row
   * are strictly greater, else 0 (comparisons only: nothing here is differentiated).
   */
  public static String topK(Placement placement, String base, String logits, int k) {
    Graph g = placement.graph();
    String column = g.op(base + "/Unsqueeze_own", "Unsqueeze", List.of(logits, g.longs(base + "/axis_own", List.of(-1L))));
    String row = g.op(base + "/Unsqueeze_other", "Unsqueeze", List.of(logits, g.longs(base + "/axis_other", List.of(-2L))));
    // greater[.., e, j] = logits[.., j] > logits[.., e]
    String greater = g.op(base + "/Greater", "Greater", List.of(row, column));
    String count = g.op(base + "/count", "ReduceSum", List.of(
        g.op(base + "/Cast_greater", "Cast", List.of(greater), attr("to", (long) placement.elemType())),
        g.longs(base + "/axis_count", List.of(-1L))), attr("keepdims", 0L));
    String kept = g.op(base + "/Less", "Less", List.of(count, placement.scalar(base + "/k", k)));
    return g.op(base + "/mask", "Cast", List.of(kept), attr("to", (long) placement.elemType()));
  }

  /**
   * The load-balancing loss {@code E · Σ_e f_e · P_e}: {@code f_e} the mean of {@code kept[.., e]}
   * and {@code P_e} the mean of {@code probs[.., e]} over the real tokens (see the class comment).
   */
  public static String loadBalance(Placement placement, String base, String x, String probs, String kept, int experts) {
    Graph g = placement.graph();
    TensorType xt = g.type(x);
    String f;
    String p;
    if (g.inputs().containsKey("attention_mask") && xt != null && xt.rank() == 3) {
      String mask = g.op(base + "/mask", "Cast", List.of("attention_mask"), attr("to", (long) placement.elemType()));
      String mask3 = g.op(base + "/mask3", "Unsqueeze", List.of(mask, g.longs(base + "/axis_last", List.of(-1L))));
      String tokens = g.longs(base + "/axes_tokens", List.of(0L, 1L));
      String count = g.op(base + "/count", "ReduceSum", List.of(mask, tokens), attr("keepdims", 0L));
      f = g.op(base + "/f", "Div", List.of(g.op(base + "/f_sum", "ReduceSum",
          List.of(g.op(base + "/f_masked", "Mul", List.of(kept, mask3)), tokens), attr("keepdims", 0L)), count));
      p = g.op(base + "/P", "Div", List.of(g.op(base + "/P_sum", "ReduceSum",
          List.of(g.op(base + "/P_masked", "Mul", List.of(probs, mask3)), tokens), attr("keepdims", 0L)), count));
    } else {
      String rows = g.longs(base + "/rows", List.of(-1L, (long) experts));
      f = g.op(base + "/f", "ReduceMean", List.of(g.op(base + "/f_rows", "Reshape", List.of(kept, rows))),
          attr("axes", List.of(0L)), attr("keepdims", 0L));
      p = g.op(base + "/P", "ReduceMean", List.of(g.op(base + "/P_rows", "Reshape", List.of(probs, rows))),
          attr("axes", List.of(0L)), attr("keepdims", 0L));
    }
    String dot = g.op(base + "/ReduceSum", "ReduceSum", List.of(g.op(base + "/Mul", "Mul", List.of(f, p))),
        attr("keepdims", 0L));
    return g.op(base + "/scaled", "Mul", List.of(dot, placement.scalar(base + "/experts", experts)));
  }
}
