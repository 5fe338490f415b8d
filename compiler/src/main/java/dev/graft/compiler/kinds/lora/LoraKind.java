package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.ParameterRole;
import java.util.List;
import java.util.TreeSet;

/**
 * LoRA: beside each chosen linear site {@code y = x·W} it adds {@code y' = y + scaling ·
 * (dropout(x) · A) · B} with A {@code [in, r]} (kaiming-uniform) and B {@code [r, out]} (zero),
 * {@code scaling = alpha / r} ({@code alpha / sqrt(r)} with rsLoRA). On a Gemm site {@code y =
 * alpha_g·x'·W' + beta·C} the update is {@code alpha_g · scaling · (x'·A)·B} ({@code x'} = xᵀ when
 * {@code transA=1}): LoRA adds to the weight term as in PEFT, so merging {@code W' + scaling·A·B}
 * into the host weight gives the same function. Dropout is only placed in training graphs.
 *
 * <p>Options {@code dora} (DoRA) and {@code init = "pissa"} (PiSSA) are placed by {@link
 * LoraVariants}.
 */
public final class LoraKind implements ComposableKind {
  public static final int MAX_RANK = 4096;
  /** Values of option {@code init}. */
  public static final String DEFAULT_INIT = "default";
  public static final String PISSA_INIT = "pissa";

  @Override
  public String id() {
    return "lora";
  }

  @Override
  public String displayName() {
    return "LoRA";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Lora";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("rank", 8, 1, MAX_RANK, "rank r of the update"),
        AdapterOption.positive("alpha", 16, "scale numerator: the update is multiplied by alpha / r"),
        AdapterOption.number("dropout", 0, 0, 1, "dropout probability on the adapter's input in training"),
        AdapterOption.bool("rslora", false, "rank-stabilized scaling alpha / sqrt(r)"),
        AdapterOption.bool("dora", false, "DoRA: a trainable magnitude per output column rescales the updated weight"),
        AdapterOption.choice("init", DEFAULT_INIT, List.of(DEFAULT_INIT, PISSA_INIT),
            "initial A and B: default (kaiming-uniform A, zero B) or pissa (principal factors of the host weight)"));
  }

  /**
   * PEFT's default targets for BERT-style and Llama-style hosts: the query and value projections.
   * A declaration with an empty target takes these sites.
   */
  public static final String DEFAULT_TARGET = "(?i).*/(query|value|q_proj|v_proj)/(MatMul|Gemm)";

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return DEFAULT_TARGET;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    return LoraVariants.diagnose(spec, sites, graph);
  }

  /** {@code alpha / rank}, or {@code alpha / sqrt(rank)} with rsLoRA. */
  public static double scaling(AdapterSpec spec) {
    int rank = spec.intOption("rank");
    double alpha = spec.doubleOption("alpha");
    return spec.boolOption("rslora") ? alpha / Math.sqrt(rank) : alpha / rank;
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    if (!composable(spec)) {
      LoraVariants.place(spec, sites, placement);
      return;
    }
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      Update u = update(spec, site, site.out(), placement);
      addToOutput(placement, site, u.base(), u.value(), u.scale());
    }
  }

  /** Plain LoRA composes; DoRA rescales the whole output and PiSSA reads the host weight, so they are placed alone. */
  @Override
  public boolean composable(AdapterSpec spec) {
    return !spec.boolOption("dora") && !spec.stringOption("init").equals(PISSA_INIT);
  }

  /** {@code v + scaling · (x_d·A)·B}, with B {@code [r, width]}: the same update as {@link #place}, added after the bias. */
  @Override
  public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
    Update u = update(spec, (LinearSite) site, width, placement);
    Graph g = placement.graph();
    String scaled = u.scale() == 1 ? u.value()
        : g.op(u.base() + "/Mul", "Mul", List.of(u.value(), placement.scalar(u.base() + "/scaling", u.scale())));
    return g.op(u.base() + "/Add", "Add", List.of(value, scaled));
  }

  /** LoRA's update at a site before scaling, {@code (x_d·A)·B} {@code [.., width]}, its node prefix and its scale. */
  private record Update(String value, String base, double scale) {}

  /** Adds A {@code [in, r]}, B {@code [r, width]} and the update's nodes at {@code site}. */
  private static Update update(AdapterSpec spec, LinearSite site, long width, Placement placement) {
    int rank = spec.intOption("rank");
    Input in = input(site, placement, spec.doubleOption("dropout"));
    String a = placement.parameter(site, "lora_A", site.in(), rank).role(ParameterRole.LORA_A)
        .init(Init.KAIMING_UNIFORM, site.in()).saveTransposed(Placement.peftKey(site, "lora_A.weight")).add();
    String b = placement.parameter(site, "lora_B", rank, width).role(ParameterRole.LORA_B)
        .init(Init.ZEROS, 0).saveTransposed(Placement.peftKey(site, "lora_B.weight")).add();
    Graph g = placement.graph();
    String base = in.base();
    String down = g.op(base + "/MatMul_A", "MatMul", List.of(in.value(), a));
    String up = g.op(base + "/MatMul_B", "MatMul", List.of(down, b));
    return new Update(up, base, scaling(spec) * in.outputScale());
  }

  /**
   * The input a linear-site adapter reads: the site's x (transposed for a Gemm with {@code
   * transA=1}), after dropout in the training graph when {@code dropout > 0}.
   *
   * @param base the node-name prefix of the adapter's nodes ({@code /<module path as a path>/lora})
   * @param outputScale what the site multiplies its weight term by (a Gemm's alpha, else 1)
   */
  public record Input(String value, String base, double outputScale) {}

  /** The site's input for an adapter's update (see {@link Input}). */
  public static Input input(LinearSite site, Placement placement, double dropout) {
    return input(site, placement, dropout, "lora");
  }

  /** The site's input for an adapter whose nodes are named under {@code /<module path>/<name>}. */
  public static Input input(LinearSite site, Placement placement, double dropout, String name) {
    Graph g = placement.graph();
    Node node = node(g, site);
    String x = node.input(0);
    String base = "/" + site.modulePath().replace('.', '/') + "/" + name;
    double outputScale = 1;
    if (node.opType().equals("Gemm")) {
      if (node.attrInt("transA", 0) == 1) {
        x = g.op(base + "/Transpose", "Transpose", List.of(x), Node.attr("perm", List.of(1L, 0L)));
      }
      outputScale = node.attrFloat("alpha", 1f);
    }
    if (placement.variant().trains() && dropout > 0) {
      String ratio = placement.scalar(base + "/dropout_ratio", dropout);
      String mode = g.constant(base + "/training_mode", dev.graft.spec.onnx.Onnx.TensorProto.newBuilder()
          .setDataType(TensorType.BOOL).setRawData(com.google.protobuf.ByteString.copyFrom(new byte[] {1})).build());
      x = g.add(base + "/Dropout", "Dropout", "", List.of(x, ratio, mode), 2, Node.attrs()).get(0);
    }
    return new Input(x, base, outputScale);
  }

  /** Adds {@code scale · update} to the site's output (before its bias) and rewires the site's consumers. */
  public static void addToOutput(Placement placement, LinearSite site, String base, String update, double scale) {
    Graph g = placement.graph();
    String y = node(g, site).output(0);
    String scaled = scale == 1 ? update : g.op(base + "/Mul", "Mul", List.of(update, placement.scalar(base + "/scaling", scale)));
    g.add(base + "/Add", "Add", "", List.of(y, scaled), 1, Node.attrs());
    Node add = g.nodes().get(g.nodes().size() - 1);
    g.replaceUses(y, add.output(0), List.of(add));
  }

  /** The host node of a linear site. */
  public static Node node(Graph graph, LinearSite site) {
    return graph.nodes().stream().filter(n -> n.name().equals(site.node())).findFirst().orElseThrow();
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "LORA";
  }

  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    boolean pissa = spec.stringOption("init").equals(PISSA_INIT);
    return loraConfig(spec, sites, c, spec.boolOption("dora"), pissa ? new JsonPrimitive(PISSA_INIT) : new JsonPrimitive(true));
  }

  /**
   * Merges a LoRA-family declaration into PEFT's LoRA config: the first sets {@code r}, {@code
   * lora_alpha}, dropout, rsLoRA and the layers; later ones of another rank or alpha go into
   * {@code rank_pattern}/{@code alpha_pattern}. False when the declarations differ in what PEFT
   * sets once (dropout, rsLoRA, DoRA, layers).
   */
  public static boolean loraConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c, boolean dora) {
    return loraConfig(spec, sites, c, dora, new JsonPrimitive(true));
  }

  /**
   * {@link #loraConfig(AdapterSpec, List, JsonObject, boolean)} with PEFT's {@code
   * init_lora_weights} ({@code true}, or {@code "pissa"}), which PEFT also sets once.
   */
  public static boolean loraConfig(
      AdapterSpec spec, List<? extends Site> sites, JsonObject c, boolean dora, JsonPrimitive initLoraWeights) {
    int rank = spec.intOption("rank");
    double alpha = spec.doubleOption("alpha");
    JsonArray layers = new JsonArray();
    spec.layers().forEach(layers::add);
    if (!c.has("r")) {
      c.addProperty("r", rank);
      c.add("lora_alpha", number(alpha));
      c.addProperty("lora_dropout", spec.doubleOption("dropout"));
      c.add("target_modules", new JsonArray());
      c.add("rank_pattern", new JsonObject());
      c.add("alpha_pattern", new JsonObject());
      c.addProperty("bias", "none");
      c.addProperty("use_rslora", spec.boolOption("rslora"));
      c.addProperty("use_dora", dora);
      c.add("layers_to_transform", spec.layers().isEmpty() ? JsonNull.INSTANCE : layers);
      c.addProperty("fan_in_fan_out", false);
      c.add("init_lora_weights", initLoraWeights);
    } else if (c.get("lora_dropout").getAsDouble() != spec.doubleOption("dropout")
        || c.get("use_rslora").getAsBoolean() != spec.boolOption("rslora")
        || c.get("use_dora").getAsBoolean() != dora
        || !c.get("init_lora_weights").equals(initLoraWeights)
        || !c.get("layers_to_transform").equals(spec.layers().isEmpty() ? JsonNull.INSTANCE : layers)) {
      return false;
    }
    TreeSet<String> targets = new TreeSet<>();
    c.getAsJsonArray("target_modules").forEach(e -> targets.add(e.getAsString()));
    for (Site s : sites) {
      if (!targets.add(s.moduleName())) {
        continue;
      }
      if (rank != c.get("r").getAsInt()) {
        c.getAsJsonObject("rank_pattern").addProperty(s.moduleName(), rank);
      }
      if (alpha != c.get("lora_alpha").getAsDouble()) {
        c.getAsJsonObject("alpha_pattern").add(s.moduleName(), number(alpha));
      }
    }
    JsonArray sorted = new JsonArray();
    targets.forEach(sorted::add);
    c.add("target_modules", sorted);
    return true;
  }

  /** A JSON number, written as an integer when it is one ({@code 16}, not {@code 16.0}). */
  public static JsonPrimitive number(double v) {
    return v == Math.rint(v) && Math.abs(v) < 1e15 ? new JsonPrimitive((long) v) : new JsonPrimitive(v);
  }
}
