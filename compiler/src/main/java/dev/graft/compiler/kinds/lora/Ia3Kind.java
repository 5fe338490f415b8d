package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.jspecify.annotations.Nullable;

/**
 * IA³: a learned vector per chosen linear site that rescales it. On a feed-forward site (its
 * node name matches the {@code feedforward} selector in full) it scales the input, {@code y =
 * (x ⊙ l)·W (+ b)} with {@code l [in]}; on any other site it scales the output, bias included,
 * {@code y = (x·W + b) ⊙ l} with {@code l [out]}: PEFT's {@code is_feedforward} layers and the
 * others. Every {@code l} starts at one (the host's function) and is not decayed by AdamW.
 * Saved as PEFT's {@code ia3_l}: {@code [1, in]} on feed-forward sites, {@code [out, 1]} on others.
 */
public final class Ia3Kind implements LinearUpdateKind {
  /**
   * Feed-forward sites by default: a BERT layer's FFN output projection (not the attention
   * output's), LLaMA's down_proj; float ({@code MatMul}, {@code Gemm}) or int8 ({@code MatMul_quant}).
   */
  public static final String FEEDFORWARD =
      "(?i).*(?<!/attention)/output/dense/(MatMul|MatMul_quant|Gemm)|.*/(down_proj|fc2)/(MatMul|MatMul_quant|Gemm)";
  /** Default sites: the attention key and value projections and the feed-forward sites. */
  public static final String DEFAULT_TARGET =
      "(?i).*/(key|value|k_proj|v_proj)/(MatMul|MatMul_quant|Gemm)|" + FEEDFORWARD.substring(4);

  @Override
  public String id() {
    return "ia3";
  }

  @Override
  public String displayName() {
    return "IA³";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Ia3";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(AdapterOption.choice("feedforward", FEEDFORWARD, List.of(),
        "selector (matched in full against node names) of the sites whose input is scaled; the others' output is"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> out = new ArrayList<>(AdapterKind.optionsInvalid(this, spec, problems(spec, sites)));
    if (out.isEmpty()) {
      for (Site s : sites) {
        if (s instanceof LinearSite site && site.int8() != null && feedforward(spec, site)) {
          out.add(Diagnostic.of(ErrorCode.INT8_SITE_UNSUPPORTED, spec.source(), "feedforward",
              displayName(), "on a feed-forward layer", site.node(), "it scales the layer's input inside the layer,"
                  + " (x ⊙ l)·W, and the int8 layer quantizes x itself (" + site.int8().quantize() + "); IA³ that"
                  + " scales the output of an int8 layer (not matched by feedforward) works"));
        }
      }
    }
    return out;
  }

  private static List<String> problems(AdapterSpec spec, List<? extends Site> sites) {
    try {
      Pattern.compile(spec.stringOption("feedforward"));
      return List.of();
    } catch (PatternSyntaxException e) {
      return List.of("feedforward selector '" + spec.stringOption("feedforward") + "' is not a valid regular expression: "
          + e.getDescription());
    }
  }

  /** Whether the declaration scales the site's input (a feed-forward site) rather than its output. */
  static boolean feedforward(AdapterSpec spec, Site site) {
    return Pattern.compile(spec.stringOption("feedforward")).matcher(site.node()).matches();
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    Graph g = placement.graph();
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      String base = LinearAdapters.base(site, "ia3");
      Node node = LinearAdapters.node(g, site);
      if (feedforward(spec, site)) {
        String l = placement.parameter(site, "ia3_l", site.in()).init(Init.ONES, 0).noDecay()
            .save(Placement.peftKey(site, "ia3_l"), 1, site.in()).add();
        if (node.opType().equals("Gemm") && node.attrInt("transA", 0) == 1) {
          l = g.op(base + "/Unsqueeze", "Unsqueeze", List.of(l, g.longs(base + "/axes", List.of(1L))));
        }
        String scaled = g.op(base + "/Mul", "Mul", List.of(node.input(0), l));
        g.replaceNode(node, node.withInput(0, scaled));
      } else {
        String l = placement.parameter(site, "ia3_l", site.out()).init(Init.ONES, 0).noDecay()
            .save(Placement.peftKey(site, "ia3_l"), site.out(), 1).add();
        String y = site.biasedOutput(g);
        g.add(base + "/Mul", "Mul", "", List.of(y, l), 1, Node.attrs());
        Node mul = g.nodes().get(g.nodes().size() - 1);
        g.replaceUses(y, mul.output(0), List.of(mul));
      }
    }
  }

  /**
   * On a feed-forward site {@code (x ⊙ l)·W = x·diag(l)·W}, so {@code ΔW = diag(l − 1)·W} (row i
   * of W times {@code l[i] − 1}); on any other site {@code (x·W + b) ⊙ l}, so {@code ΔW = W·diag(l
   * − 1)} (column j times {@code l[j] − 1}) and, where the layer has a bias (or a Gemm's C), {@code
   * Δb = b ⊙ (l − 1)}.
   */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String base = LinearAdapters.base(site, "ia3") + "/delta";
    String w = LinearAdapters.weightInOut(graph, site, tensors.hostWeight(), base);
    String factor = graph.op(base + "/Sub", "Sub", List.of(tensors.parameter("ia3_l"),
        graph.scalar(base + "/one", graph.typeOrThrow(tensors.hostWeight()).elemType(), 1)));
    if (feedforward(spec, site)) {
      String rows = graph.op(base + "/Unsqueeze", "Unsqueeze", List.of(factor, graph.longs(base + "/axes", List.of(1L))));
      return WeightUpdate.delta(graph.op(base + "/Mul", "Mul", List.of(w, rows)));
    }
    String delta = graph.op(base + "/Mul", "Mul", List.of(w, factor));
    @Nullable String bias = SiteTensors.hostBias(graph, site);
    return new WeightUpdate(delta, false, bias == null ? null : graph.op(base + "/Mul_bias", "Mul", List.of(bias, factor)));
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "IA3";
  }

  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    if (!c.has("target_modules")) {
      c.add("target_modules", new JsonArray());
      c.add("feedforward_modules", new JsonArray());
      c.addProperty("fan_in_fan_out", false);
      c.addProperty("init_ia3_weights", true);
    }
    List<Site> feedforward = new ArrayList<>();
    sites.stream().filter(s -> feedforward(spec, s)).forEach(feedforward::add);
    PeftTargets.add(c, "target_modules", sites);
    PeftTargets.add(c, "feedforward_modules", feedforward);
    return true;
  }
}
