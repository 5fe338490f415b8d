package dev.graft.compiler.kinds.bottleneck;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import java.util.ArrayList;
import java.util.List;

/**
 * What the bottleneck kinds (sequential, parallel, Hydra) share: their options and one branch
 * {@code up(act(down(v)))}, with down {@code [in, in/reduction]} and up {@code [in/reduction,
 * out]}, each with a bias, initialized as AdapterHub's {@code init_weights} choices.
 */
public final class Bottlenecks {
  /** The nonlinearities a bottleneck takes (AdapterHub's names; swish is x·sigmoid(x), gelu the erf form). */
  public static final List<String> NONLINEARITIES = List.of("relu", "gelu", "tanh", "swish");
  /** AdapterHub's {@code init_weights} choices. */
  static final List<String> INITS = List.of("mam_adapter", "bert", "houlsby");

  private Bottlenecks() {}

  public static AdapterOption reduction(int defaultValue) {
    return AdapterOption.integer("reduction", defaultValue, 1, 65536,
        "reduction factor: the bottleneck has max(1, floor(size / reduction)) units");
  }

  public static AdapterOption nonlinearity(String defaultValue, List<String> choices) {
    return AdapterOption.choice("nonlinearity", defaultValue, choices, "activation between down and up projection");
  }

  public static AdapterOption initWeights() {
    return AdapterOption.choice("initWeights", "mam_adapter", INITS,
        "mam_adapter: down kaiming-uniform, up zero (the adapter starts as the identity); bert: both normal(0, 0.02);"
            + " houlsby: both normal(0, 0.01); biases zero");
  }

  /**
   * The bottleneck width for a projection from {@code size} units: {@code floor(size / reduction)},
   * at least 1 (as AdapterHub's {@code down_sample}).
   */
  static long width(long size, AdapterSpec spec) {
    return Math.max(1, size / spec.intOption("reduction"));
  }

  /**
   * Adds the branch {@code up(act(down(v)))} reading {@code v} [.., in] and returns its output [..,
   * out]. Parameters {@code <module>.<name>.down.weight} [in, w], {@code .down.bias} [w], {@code
   * .up.weight} [w, out], {@code .up.bias} [out]; saved under {@code base_model.model.<module>.<key>.}
   * {@code adapter_down.0.weight} [w, in], {@code adapter_down.0.bias}, {@code adapter_up.weight}
   * [out, w], {@code adapter_up.bias} (AdapterHub's module layout, torch's [out, in] weights).
   */
  public static String branch(Placement placement, Site site, String name, String key, String v, long in, long out,
      AdapterSpec spec, String nonlinearity) {
    long w = width(in, spec);
    String keyBase = site.modulePath() + "." + key + ".";
    Placement.ParameterBuilder down = placement.parameter(site, name + ".down.weight", in, w).exportRankAxis(1);
    Placement.ParameterBuilder up = placement.parameter(site, name + ".up.weight", w, out).exportRankAxis(0);
    initialize(spec.stringOption("initWeights"), down, up, in);
    String downW = down.saveTransposed(Placement.PEFT_PREFIX + keyBase + "adapter_down.0.weight").add();
    String downB = placement.parameter(site, name + ".down.bias", w).exportRankAxis(0).init(Init.ZEROS, 0).noDecay()
        .save(Placement.PEFT_PREFIX + keyBase + "adapter_down.0.bias").add();
    String upW = up.saveTransposed(Placement.PEFT_PREFIX + keyBase + "adapter_up.weight").add();
    String upB = placement.parameter(site, name + ".up.bias", out).init(Init.ZEROS, 0).noDecay()
        .save(Placement.PEFT_PREFIX + keyBase + "adapter_up.bias").add();
    Graph g = placement.graph();
    String base = "/" + site.modulePath().replace('.', '/') + "/" + name.replace('.', '/');
    String d = g.op(base + "/down/Add", "Add", List.of(g.op(base + "/down/MatMul", "MatMul", List.of(v, downW)), downB));
    String a = activation(placement, base, d, nonlinearity);
    return g.op(base + "/up/Add", "Add", List.of(g.op(base + "/up/MatMul", "MatMul", List.of(a, upW)), upB));
  }

  /**
   * Initializes a bottleneck's down [in, w] and up [w, out] projections as option {@code initWeights}
   * asks: mam_adapter (down kaiming-uniform over {@code in}, up zero), bert (both N(0, 0.02)) or
   * houlsby (both N(0, 0.01)).
   */
  static void initialize(String init, Placement.ParameterBuilder down, Placement.ParameterBuilder up, long in) {
    switch (init) {
      case "mam_adapter" -> {
        down.init(Init.KAIMING_UNIFORM, in);
        up.init(Init.ZEROS, 0);
      }
      case "bert" -> {
        down.init(Init.NORMAL, 0.02);
        up.init(Init.NORMAL, 0.02);
      }
      case "houlsby" -> {
        down.init(Init.NORMAL, 0.01);
        up.init(Init.NORMAL, 0.01);
      }
      default -> throw new IllegalArgumentException("unknown initWeights '" + init + "'");
    }
  }

  /** {@code act(x)}: relu, tanh, swish {@code x·sigmoid(x)}, gelu {@code x·(1 + erf(x/√2))/2}, identity. */
  static String activation(Placement placement, String base, String x, String nonlinearity) {
    Graph g = placement.graph();
    return switch (nonlinearity) {
      case "relu" -> g.op(base + "/Relu", "Relu", List.of(x));
      case "tanh" -> g.op(base + "/Tanh", "Tanh", List.of(x));
      case "swish" -> g.op(base + "/swish/Mul", "Mul", List.of(x, g.op(base + "/swish/Sigmoid", "Sigmoid", List.of(x))));
      case "gelu" -> {
        String erf = g.op(base + "/gelu/Erf", "Erf",
            List.of(g.op(base + "/gelu/Div", "Div", List.of(x, placement.scalar(base + "/gelu/sqrt2", Math.sqrt(2))))));
        String onePlus = g.op(base + "/gelu/Add", "Add", List.of(erf, placement.scalar(base + "/gelu/one", 1)));
        yield g.op(base + "/gelu/Mul_1", "Mul", List.of(
            g.op(base + "/gelu/Mul", "Mul", List.of(x, onePlus)), placement.scalar(base + "/gelu/half", 0.5)));
      }
      case "identity" -> x;
      default -> throw new IllegalArgumentException("unknown nonlinearity '" + nonlinearity + "'");
    };
  }

  /** {@code scale · v} ({@code v} itself when the scale is 1). */
  public static String scaled(Placement placement, String base, String v, double scale) {
    return scale == 1 ? v : placement.graph().op(base + "/Mul", "Mul", List.of(v, placement.scalar(base + "/scaling", scale)));
  }

  /**
   * Makes {@code replacement} the value every host consumer of {@code value} reads: rewires every
   * node except those added since node {@code firstAdded} (the adapter's own, which read the
   * original).
   */
  public static void rewire(Graph g, String value, String replacement, int firstAdded) {
    List<Node> added = new ArrayList<>(g.nodes().subList(firstAdded, g.nodes().size()));
    g.replaceUses(value, replacement, added);
  }
}
