package dev.graft.dsl;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.AdapterOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The options of one adapter declaration in the builder, as Kotlin properties ({@code rank = 8})
 * or chained calls ({@code .rank(8)}). What a kind accepts, each option's type, range and default
 * are its {@link AdapterKind#options()}: the typed properties here are views of those options
 * (every option also through {@link #set} and {@link #get}), an unset one reads as the kind's
 * default, and the compiler checks what was set against the kind's list (an option the kind does
 * not have is a compile error that lists those it has).
 */
public final class AdapterOptions {
  private final String kind;
  private final Map<String, Object> values = new LinkedHashMap<>();
  private List<Integer> layers = List.of();
  private String name = "";

  /** The options of a declaration of the kind with id {@code kind}. */
  AdapterOptions(String kind) {
    this.kind = kind;
  }

  /** The id of the adapter kind these options declare, e.g. {@code "lora"}. */
  public String getKind() {
    return kind;
  }

  /**
   * Names the adapter ({@code [a-z][a-z0-9_]*}, unique in the graft): its parameters are then
   * named {@code <name>.<module>.<suffix>}, and it can be composed, activated, trained or frozen,
   * saved and loaded by name.
   */
  public AdapterOptions name(String value) {
    name = value;
    return this;
  }

  public String getName() {
    return name;
  }

  public void setName(String value) {
    name = value;
  }

  /**
   * Sets option {@code name} of the kind (an Integer, Double, Boolean, String or a list of
   * Integers, as its type); the compiler checks it against the kind's options.
   */
  public AdapterOptions set(String name, Object value) {
    values.put(name, value);
    return this;
  }

  /**
   * The value of option {@code name}: as set (converted to the option's type), else the kind's
   * default.
   *
   * @throws IllegalArgumentException when the kind has no option {@code name} (the message lists
   *     those it has), when the value set does not have the option's type, or when the kind is unknown
   */
  public Object get(String name) {
    AdapterKind k = AdapterKinds.byId(kind).orElseThrow(() -> new IllegalArgumentException("unknown adapter kind '"
        + kind + "'; known kinds: " + AdapterKinds.all().stream().map(AdapterKind::id).toList()));
    AdapterOption option = k.options().stream().filter(o -> o.name().equals(name)).findFirst()
        .orElseThrow(() -> new IllegalArgumentException(k.displayName() + " has no option '" + name
            + "'; its options are " + k.options().stream().map(AdapterOption::name).toList()));
    Object given = values.get(name);
    if (given == null) {
      return option.defaultValue();
    }
    Object value = option.coerce(given);
    if (value == null) {
      throw new IllegalArgumentException(k.displayName() + " option '" + name + "' is " + option.type().name().toLowerCase(Locale.ROOT)
          + ", but was set to " + given + " (" + given.getClass().getSimpleName() + ")");
    }
    return value;
  }

  /** The options set so far (the kind's defaults are not among them). */
  public Map<String, Object> getValues() {
    return Map.copyOf(values);
  }

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  public AdapterOptions layers(Integer... value) {
    return layers(List.of(value));
  }

  public AdapterOptions layers(List<Integer> value) {
    layers = List.copyOf(value);
    return this;
  }

  public List<Integer> getLayers() {
    return layers;
  }

  public void setLayers(List<Integer> value) {
    layers = List.copyOf(value);
  }

  private int intValue(String name) {
    return ((Number) get(name)).intValue();
  }

  private double doubleValue(String name) {
    return ((Number) get(name)).doubleValue();
  }

  private boolean boolValue(String name) {
    return (Boolean) get(name);
  }

  private String stringValue(String name) {
    return (String) get(name);
  }

  /** Rank of the update (LoRA family, LoKr, LoHa, VeRA). */
  public AdapterOptions rank(int value) {
    return set("rank", value);
  }

  public int getRank() {
    return intValue("rank");
  }

  public void setRank(int value) {
    rank(value);
  }

  /** Scale numerator: the update is multiplied by alpha / rank. */
  public AdapterOptions alpha(double value) {
    return set("alpha", value);
  }

  public double getAlpha() {
    return doubleValue("alpha");
  }

  public void setAlpha(double value) {
    alpha(value);
  }

  /** Dropout probability on the adapter's input in training. */
  public AdapterOptions dropout(double value) {
    return set("dropout", value);
  }

  public double getDropout() {
    return doubleValue("dropout");
  }

  public void setDropout(double value) {
    dropout(value);
  }

  /** Rank-stabilized scaling alpha / sqrt(rank). */
  public AdapterOptions rslora(boolean value) {
    return set("rslora", value);
  }

  public boolean isRslora() {
    return boolValue("rslora");
  }

  public void setRslora(boolean value) {
    rslora(value);
  }

  /** DoRA: a trainable magnitude per output column rescales LoRA's updated weight. */
  public AdapterOptions dora(boolean value) {
    return set("dora", value);
  }

  public boolean isDora() {
    return boolValue("dora");
  }

  public void setDora(boolean value) {
    dora(value);
  }

  /**
   * How the adapter starts: LoRA's A and B {@code "default"}, {@code "pissa"} (principal
   * factors of the host weight), {@code "corda_ipm"} or {@code "corda_kpm"} (CorDA: factors of the
   * host weight times the input covariance, set by {@code AdapterModel.calibrate}); prompt tuning's virtual tokens {@code "vocab"} or {@code "random"}.
   */
  public AdapterOptions init(String value) {
    return set("init", value);
  }

  public String getInit() {
    return stringValue("init");
  }

  public void setInit(String value) {
    init(value);
  }

  /** LoKr's Kronecker split: -1 near-square, else the first factor's side (must divide every adapted dimension). */
  public AdapterOptions factor(int value) {
    return set("factor", value);
  }

  public int getFactor() {
    return intValue("factor");
  }

  public void setFactor(int value) {
    factor(value);
  }

  /** LoKr: also decompose W1 at the rank (PEFT's decompose_both). */
  public AdapterOptions decomposeBoth(boolean value) {
    return set("decomposeBoth", value);
  }

  public boolean isDecomposeBoth() {
    return boolValue("decomposeBoth");
  }

  public void setDecomposeBoth(boolean value) {
    decomposeBoth(value);
  }

  /** VeRA: initial value of the λ_d vector's elements. */
  public AdapterOptions dInitial(double value) {
    return set("dInitial", value);
  }

  public double getDInitial() {
    return doubleValue("dInitial");
  }

  public void setDInitial(double value) {
    dInitial(value);
  }

  /** VeRA: save the shared random projections with the adapter. */
  public AdapterOptions saveProjection(boolean value) {
    return set("saveProjection", value);
  }

  public boolean isSaveProjection() {
    return boolValue("saveProjection");
  }

  public void setSaveProjection(boolean value) {
    saveProjection(value);
  }

  /** IA³: selector of the feed-forward sites, whose input (not output) is scaled. */
  public AdapterOptions feedforward(String value) {
    return set("feedforward", value);
  }

  public String getFeedforward() {
    return stringValue("feedforward");
  }

  public void setFeedforward(String value) {
    feedforward(value);
  }

  /** Default sites of a bottleneck adapter: "pfeiffer" or "houlsby". */
  public AdapterOptions config(String value) {
    return set("config", value);
  }

  public String getConfig() {
    return stringValue("config");
  }

  public void setConfig(String value) {
    config(value);
  }

  /** Reduction factor of bottleneck adapters: the bottleneck has size / reduction units. */
  public AdapterOptions reduction(int value) {
    return set("reduction", value);
  }

  public int getReduction() {
    return intValue("reduction");
  }

  public void setReduction(int value) {
    reduction(value);
  }

  /** Activation of bottleneck adapters: "relu", "gelu", "tanh", "swish" (Hydra also "identity"). */
  public AdapterOptions nonlinearity(String value) {
    return set("nonlinearity", value);
  }

  public String getNonlinearity() {
    return stringValue("nonlinearity");
  }

  public void setNonlinearity(String value) {
    nonlinearity(value);
  }

  /** Whether a bottleneck adapter adds its output to its input. */
  public AdapterOptions residual(boolean value) {
    return set("residual", value);
  }

  public boolean isResidual() {
    return boolValue("residual");
  }

  public void setResidual(boolean value) {
    residual(value);
  }

  /** Scale of a parallel adapter's or Hydra's output. */
  public AdapterOptions scaling(double value) {
    return set("scaling", value);
  }

  public double getScaling() {
    return doubleValue("scaling");
  }

  public void setScaling(double value) {
    scaling(value);
  }

  /** Initialization of bottleneck adapters: "mam_adapter", "bert" or "houlsby". */
  public AdapterOptions initWeights(String value) {
    return set("initWeights", value);
  }

  public String getInitWeights() {
    return stringValue("initWeights");
  }

  public void setInitWeights(String value) {
    initWeights(value);
  }

  /** Virtual tokens (prompt tuning) or virtual key/value positions (prefix tuning). */
  public AdapterOptions tokens(int value) {
    return set("tokens", value);
  }

  public int getTokens() {
    return intValue("tokens");
  }

  public void setTokens(int value) {
    tokens(value);
  }

  /** Prefix tuning through a two-layer tanh MLP (PEFT's prefix_projection). */
  public AdapterOptions projection(boolean value) {
    return set("projection", value);
  }

  public boolean isProjection() {
    return boolValue("projection");
  }

  public void setProjection(boolean value) {
    projection(value);
  }

  /** Hidden width of prefix tuning's projection MLP. */
  public AdapterOptions projectionHidden(int value) {
    return set("projectionHidden", value);
  }

  public int getProjectionHidden() {
    return intValue("projectionHidden");
  }

  public void setProjectionHidden(int value) {
    projectionHidden(value);
  }

  /** Mixture of LoRA experts: experts at every site. */
  public AdapterOptions experts(int value) {
    return set("experts", value);
  }

  public int getExperts() {
    return intValue("experts");
  }

  public void setExperts(int value) {
    experts(value);
  }

  /** Mixture of LoRA experts: the expert count of each selected layer, in ascending layer order (overrides experts). */
  public AdapterOptions expertsPerLayer(Integer... value) {
    return expertsPerLayer(List.of(value));
  }

  public AdapterOptions expertsPerLayer(List<Integer> value) {
    return set("expertsPerLayer", List.copyOf(value));
  }

  @SuppressWarnings("unchecked")
  public List<Integer> getExpertsPerLayer() {
    return (List<Integer>) get("expertsPerLayer");
  }

  public void setExpertsPerLayer(List<Integer> value) {
    expertsPerLayer(value);
  }

  /** Mixture of LoRA experts: the router, "soft" or "top_k". */
  public AdapterOptions router(String value) {
    return set("router", value);
  }

  public String getRouter() {
    return stringValue("router");
  }

  public void setRouter(String value) {
    router(value);
  }

  /** Mixture of LoRA experts: experts kept per token by the top_k router. */
  public AdapterOptions topK(int value) {
    return set("topK", value);
  }

  public int getTopK() {
    return intValue("topK");
  }

  public void setTopK(int value) {
    topK(value);
  }

  /** LT-SFT: λ of the L1 pull toward the host weights (λ·Σ|Δ| / the host's parameter count). */
  public AdapterOptions l1Reg(double value) {
    return set("l1Reg", value);
  }

  public double getL1Reg() {
    return doubleValue("l1Reg");
  }

  public void setL1Reg(double value) {
    l1Reg(value);
  }

  /** Mixture of LoRA experts: weight of each site's load-balancing loss (top_k router). */
  public AdapterOptions auxLossWeight(double value) {
    return set("auxLossWeight", value);
  }

  public double getAuxLossWeight() {
    return doubleValue("auxLossWeight");
  }

  public void setAuxLossWeight(double value) {
    auxLossWeight(value);
  }

  /** Multi-head routing: LoRA pieces in the inventory. */
  public AdapterOptions pieces(int value) {
    return set("pieces", value);
  }

  public int getPieces() {
    return intValue("pieces");
  }

  public void setPieces(int value) {
    pieces(value);
  }

  /** Multi-head routing: routing heads (blocks of the input and output dimensions). */
  public AdapterOptions heads(int value) {
    return set("heads", value);
  }

  public int getHeads() {
    return intValue("heads");
  }

  public void setHeads(int value) {
    heads(value);
  }

  /** Multi-head routing: one inventory for all sites of the same shape (true) or one per site. */
  public AdapterOptions sharePieces(boolean value) {
    return set("sharePieces", value);
  }

  public boolean isSharePieces() {
    return boolValue("sharePieces");
  }

  public void setSharePieces(boolean value) {
    sharePieces(value);
  }

  /** Earth-Adapter: the low-pass cutoff in [0, 2) (box: the reference's cutoff_ratio; radial, square: a normalized radius). */
  public AdapterOptions cutoff(double value) {
    return set("cutoff", value);
  }

  public double getCutoff() {
    return doubleValue("cutoff");
  }

  public void setCutoff(double value) {
    cutoff(value);
  }

  /** Earth-Adapter: the low-pass mask, "box" (the reference's), "radial" or "square". */
  public AdapterOptions mask(String value) {
    return set("mask", value);
  }

  public String getMask() {
    return stringValue("mask");
  }

  public void setMask(String value) {
    mask(value);
  }

  /** Earth-Adapter: patch grid rows; 0 infers a square grid. */
  public AdapterOptions gridHeight(int value) {
    return set("gridHeight", value);
  }

  public int getGridHeight() {
    return intValue("gridHeight");
  }

  public void setGridHeight(int value) {
    gridHeight(value);
  }

  /** Earth-Adapter: patch grid columns; 0 infers a square grid. */
  public AdapterOptions gridWidth(int value) {
    return set("gridWidth", value);
  }

  public int getGridWidth() {
    return intValue("gridWidth");
  }

  public void setGridWidth(int value) {
    gridWidth(value);
  }

  /** Earth-Adapter: tokens before the grid (a class token); -1 infers 1, then 0. */
  public AdapterOptions extraTokens(int value) {
    return set("extraTokens", value);
  }

  public int getExtraTokens() {
    return intValue("extraTokens");
  }

  public void setExtraTokens(int value) {
    extraTokens(value);
  }

  /**
   * Earth-Adapter: what it reads and replaces, "block" (the residual sum the target's output joins,
   * the reference's) or "output" (the target's output).
   */
  public AdapterOptions input(String value) {
    return set("input", value);
  }

  public String getInput() {
    return stringValue("input");
  }

  public void setInput(String value) {
    input(value);
  }

  /**
   * Quantized adapter (Jie et al., ICCV 2023), for any kind: its trainable weight tensors of two or
   * more axes are read in the forward pass as {@code μ + σ·Q((w − μ)/σ)}, Q the Lloyd-Max quantizer
   * of N(0, 1) at {@code bits} (1, 2, 4 or 8; 0 for full precision), μ and σ the tensor's own mean
   * and standard deviation, with a straight-through gradient; vectors and biases stay full precision.
   */
  public AdapterOptions quantizeBits(int bits) {
    return set("quantizeBits", bits);
  }

  /** The bits set by {@link #quantizeBits} (0, full precision, when not set). */
  public int getQuantizeBits() {
    Object v = values.get("quantizeBits");
    return v instanceof Number n ? n.intValue() : 0;
  }

  public void setQuantizeBits(int bits) {
    quantizeBits(bits);
  }

  /** MoSA: the number of disjoint sparse modules the adapter is split into. */
  public AdapterOptions modules(int value) {
    return set("modules", value);
  }

  public int getModules() {
    return intValue("modules");
  }

  public void setModules(int value) {
    modules(value);
  }

  /** MoSA: the modules trained each step. */
  public AdapterOptions active(int value) {
    return set("active", value);
  }

  public int getActive() {
    return intValue("active");
  }

  public void setActive(int value) {
    active(value);
  }

  /** MoSA: the seed of the fixed random split into modules. */
  public AdapterOptions partitionSeed(int value) {
    return set("partitionSeed", value);
  }

  public int getPartitionSeed() {
    return intValue("partitionSeed");
  }

  public void setPartitionSeed(int value) {
    partitionSeed(value);
  }

  /** MoSA: the tensors split into modules, "up" (the reference's), "down", "both" (weights) or "all". */
  public AdapterOptions split(String value) {
    return set("split", value);
  }

  public String getSplit() {
    return stringValue("split");
  }

  public void setSplit(String value) {
    split(value);
  }

  /** MoSA: scale the active entries by modules / active in training (inverted dropout; not the reference's). */
  public AdapterOptions rescale(boolean value) {
    return set("rescale", value);
  }

  public boolean isRescale() {
    return boolValue("rescale");
  }

  public void setRescale(boolean value) {
    rescale(value);
  }

  /** MoSA: how the active modules are drawn, "site" (each site independently; the default) or "step" (shared). */
  public AdapterOptions draw(String value) {
    return set("draw", value);
  }

  public String getDraw() {
    return stringValue("draw");
  }

  public void setDraw(String value) {
    draw(value);
  }

  /** SEMA: adapters in each selected layer's pool, in ascending layer order (empty: one per layer). */
  public AdapterOptions poolPerLayer(Integer... value) {
    return poolPerLayer(List.of(value));
  }

  public AdapterOptions poolPerLayer(List<Integer> value) {
    return set("poolPerLayer", List.copyOf(value));
  }

  @SuppressWarnings("unchecked")
  public List<Integer> getPoolPerLayer() {
    return (List<Integer>) get("poolPerLayer");
  }

  public void setPoolPerLayer(List<Integer> value) {
    poolPerLayer(value);
  }

  /** SEMA: frozen leading adapters of each selected layer's pool, in ascending layer order (empty: none). */
  public AdapterOptions frozenPerLayer(Integer... value) {
    return frozenPerLayer(List.of(value));
  }

  public AdapterOptions frozenPerLayer(List<Integer> value) {
    return set("frozenPerLayer", List.copyOf(value));
  }

  @SuppressWarnings("unchecked")
  public List<Integer> getFrozenPerLayer() {
    return (List<Integer>) get("frozenPerLayer");
  }

  public void setFrozenPerLayer(List<Integer> value) {
    frozenPerLayer(value);
  }

  /** SoKA: i1, the input side of each A_k (-1: the near-square split). */
  public AdapterOptions inFactor(int value) {
    return set("inFactor", value);
  }

  public int getInFactor() {
    return intValue("inFactor");
  }

  public void setInFactor(int value) {
    inFactor(value);
  }

  /** SoKA: o1, the output side of each A_k (-1: the near-square split). */
  public AdapterOptions outFactor(int value) {
    return set("outFactor", value);
  }

  public int getOutFactor() {
    return intValue("outFactor");
  }

  public void setOutFactor(int value) {
    outFactor(value);
  }

  /** SoKA: how many Kronecker terms, "both" (the fewer of energy and elbow; the default), "energy" or "elbow". */
  public AdapterOptions rule(String value) {
    return set("rule", value);
  }

  public String getRule() {
    return stringValue("rule");
  }

  public void setRule(String value) {
    rule(value);
  }

  /** SoKA: the share of Σσ² the kept terms hold (rules energy and both), in [0, 1). */
  public AdapterOptions energy(double value) {
    return set("energy", value);
  }

  public double getEnergy() {
    return doubleValue("energy");
  }

  public void setEnergy(double value) {
    energy(value);
  }

  /** SoKA: the most Kronecker terms a site keeps. */
  public AdapterOptions maxTerms(int value) {
    return set("maxTerms", value);
  }

  public int getMaxTerms() {
    return intValue("maxTerms");
  }

  public void setMaxTerms(int value) {
    maxTerms(value);
  }

  /** SketchTune: output channels sharing one 16-value codebook. */
  public AdapterOptions groupSize(int value) {
    return set("groupSize", value);
  }

  public int getGroupSize() {
    return intValue("groupSize");
  }

  public void setGroupSize(int value) {
    groupSize(value);
  }

  /** SketchTune: the most Lloyd rounds of each group's k-means. */
  public AdapterOptions iterations(int value) {
    return set("iterations", value);
  }

  public int getIterations() {
    return intValue("iterations");
  }

  public void setIterations(int value) {
    iterations(value);
  }

  /** SketchTune: column groups along each output channel's inputs, each with its own codebook (the reference's GPR). */
  public AdapterOptions groupsPerRow(int value) {
    return set("groupsPerRow", value);
  }

  public int getGroupsPerRow() {
    return intValue("groupsPerRow");
  }

  public void setGroupsPerRow(int value) {
    groupsPerRow(value);
  }
}
