package dev.graft.compiler.kinds;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.ExportDefault;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * What an {@link AdapterKind} places into: the graph of one {@link GraphVariant}, the parameters
 * added so far, and the helpers every kind needs to add one. Parameter names are {@code
 * <module path>.<suffix>}, e.g. {@code encoder.layer.0.attention.self.query.lora_A}, prefixed
 * with {@code <name>.} for a named adapter.
 */
public final class Placement {
  /** The graph input that seeds per-step randomness of the training step (int64 scalar). */
  public static final String SEED = "seed";
  /** Prefix of PEFT's state-dict keys. */
  public static final String PEFT_PREFIX = "base_model.model.";

  private final Graph graph;
  private final GraphVariant variant;
  private final int elemType;
  private final List<Parameter> parameters = new ArrayList<>();
  private final Set<String> hostSources = new TreeSet<>();
  private final List<AuxiliaryLoss> auxiliaryLosses = new ArrayList<>();
  private int prependedTokens;
  private int adapter;
  /** The current declaration's name ("" when unnamed): the prefix of its parameters' names. */
  private String adapterName = "";
  /** Whether the current declaration's parameters are frozen (a named adapter the step does not train). */
  private boolean adapterFrozen;
  /** The current declaration's quantization bits (0: full precision), see {@link #quantize}. */
  private int quantizeBits;
  /** How many parameters the current declaration has quantized so far. */
  private int quantized;

  public Placement(Graph graph, GraphVariant variant, int elemType) {
    this.graph = graph;
    this.variant = variant;
    this.elemType = elemType;
  }

  public Graph graph() {
    return graph;
  }

  /**
   * The graph being built. Training-only nodes (dropout, per-step draws) go only where {@link
   * GraphVariant#trains()}; the parameters added must not depend on it.
   */
  public GraphVariant variant() {
    return variant;
  }

  /** The host's floating-point element type; every parameter has it. */
  public int elemType() {
    return elemType;
  }

  /** The parameters added so far, in order. */
  public List<Parameter> parameters() {
    return parameters;
  }

  /** Host initializers that parameter initializers read (the runtime loads them). */
  public Set<String> hostSources() {
    return hostSources;
  }

  /**
   * A loss term an adapter adds to the task's loss in training, e.g. a router's load-balancing
   * loss: the training step minimizes {@code task loss + Σ weight · value} and outputs each term,
   * unweighted, as {@code name}.
   *
   * @param name the training graph output that reports the term (unique in the graft)
   * @param value a scalar of the host's element type
   * @param weight its coefficient in the total loss
   */
  public record AuxiliaryLoss(String name, String value, double weight) {}

  /**
   * Adds an auxiliary loss term (training graph only; a no-op in the inference graph, so kinds
   * can call it unconditionally). {@code name} must be unique in the graft.
   */
  public void auxiliaryLoss(String name, String value, double weight) {
    if (!variant.trains()) {
      return;
    }
    if (auxiliaryLosses.stream().anyMatch(a -> a.name().equals(name))) {
      throw new IllegalStateException("two auxiliary losses named '" + name + "'");
    }
    auxiliaryLosses.add(new AuxiliaryLoss(name, value, weight));
  }

  /** The auxiliary losses added so far, in order. */
  public List<AuxiliaryLoss> auxiliaryLosses() {
    return auxiliaryLosses;
  }

  /**
   * Records that an adapter put {@code n} tokens before the caller's in the host's sequence
   * (prompt tuning's virtual tokens), so they take {@code n} rows of the host's position table:
   * the manifest's input limits count them.
   */
  public void prependTokens(int n) {
    prependedTokens = Math.addExact(prependedTokens, n);
  }

  /** The tokens adapters put before the caller's so far ({@link #prependTokens}). */
  public int prependedTokens() {
    return prependedTokens;
  }

  /** Sets the declaration (0-based) the following parameters belong to. */
  public void declaration(int index) {
    declaration(index, "", false);
  }

  /**
   * Quantizes the following parameters of the current declaration at {@code bits} (0: none; else
   * 1, 2, 4 or 8): each trainable parameter of two or more axes is read through {@link
   * QuantizedWeights#straightThrough} (vectors, e.g. scaling vectors, magnitudes and biases, and
   * frozen parameters stay as they are). Reset by {@link #declaration}.
   */
  public void quantize(int bits) {
    if (bits != 0 && !LloydMax.supported(bits)) {
      throw new IllegalArgumentException("quantized adapters take 1, 2, 4 or 8 bits, got " + bits);
    }
    quantizeBits = bits;
  }

  /** How many parameters of the current declaration are quantized ({@link #quantize}). */
  public int quantizedParameters() {
    return quantized;
  }

  /** The prefix of gate inputs: a named adapter's gate is {@code gate.<name>}. */
  public static final String GATE_PREFIX = "gate.";

  /**
   * Sets the declaration the following parameters belong to: index (0-based; -1 for a composition
   * block's own parameters, which belong to no declaration), its name (parameters are then named
   * {@code <name>.<module path>.<suffix>}) and whether they are frozen.
   */
  public void declaration(int index, String name, boolean frozen) {
    this.adapter = index + 1;
    this.adapterName = name;
    this.adapterFrozen = frozen;
    this.quantizeBits = 0;
    this.quantized = 0;
  }

  /**
   * The gate of named adapter {@code name}: a bool scalar graph input {@code gate.<name>}, added
   * on first use; true switches the adapter on.
   */
  public String gate(String name) {
    String input = GATE_PREFIX + name;
    if (!graph.inputs().containsKey(input)) {
      graph.addInput(input, TensorType.of(TensorType.BOOL));
    }
    return input;
  }

  private String named(String name) {
    return adapterName.isEmpty() ? name : adapterName + "." + name;
  }

  /** A scalar constant of the host's element type. */
  public String scalar(String name, double value) {
    return graph.scalar(name, elemType, value);
  }

  /**
   * The training step's per-step seed (an int64 scalar input the runtime sets to a new value
   * each step), added on first use. Only in the training graph.
   */
  public String seed() {
    if (!variant.trains()) {
      throw new IllegalStateException("the " + variant + " graph has no per-step seed");
    }
    if (!graph.inputs().containsKey(SEED)) {
      graph.addInput(SEED, TensorType.of(TensorType.INT64));
    }
    return SEED;
  }

  /**
   * Declares {@code declared} (placed by the same declaration into another graph) as parameters
   * of this graph, inputs without nodes reading them: the merged graph keeps the parameters every
   * variant declares.
   */
  public void declare(List<Parameter> declared, Set<String> sources) {
    for (Parameter p : declared) {
      graph.addInput(p.getName(), TensorType.of(elemType, p.getShapeList().stream().mapToLong(Long::longValue).toArray()));
      parameters.add(p);
    }
    hostSources.addAll(sources);
  }

  /** Starts a parameter named {@code <site module path>.<suffix>} of {@code shape}. */
  public ParameterBuilder parameter(Site site, String suffix, long... shape) {
    return new ParameterBuilder(named(site.modulePath() + "." + suffix), site.modulePath(), site.node(), shape);
  }

  /** Starts a parameter not tied to one site (shared by several), named {@code name}. */
  public ParameterBuilder sharedParameter(String name, long... shape) {
    return new ParameterBuilder(named(name), name, "", shape);
  }

  /** A parameter being declared; {@link #add()} makes it a graph input and returns its name. */
  public final class ParameterBuilder {
    private final Parameter.Builder p;

    private ParameterBuilder(String name, String site, String siteNode, long[] shape) {
      p = Parameter.newBuilder().setName(name).setSite(site).setSiteNode(siteNode)
          .setRole(ParameterRole.ADAPTER).setInit(Init.ZEROS).setFrozen(adapterFrozen);
      for (long d : shape) {
        p.addShape(d);
      }
    }

    /** The name the parameter will have (to find one added before, e.g. a shared inventory). */
    public String name() {
      return p.getName();
    }

    public ParameterBuilder role(ParameterRole value) {
      p.setRole(value);
      return this;
    }

    /** How the runtime initializes it; {@code scale} as {@link Init} documents per kind. */
    public ParameterBuilder init(Init init, double scale) {
      p.setInit(init).setInitScale(scale);
      return this;
    }

    /** Initialized from host initializer {@code source} ({@link Init#HOST_COPY}, {@link Init#PISSA_A} …). */
    public ParameterBuilder initFromHost(Init init, String source, double scale) {
      hostSources.add(source);
      p.setInit(init).setInitSource(source).setInitScale(scale);
      return this;
    }

    /**
     * Initialized by the run time's calibration from the covariance of the inference graph's
     * tensor {@code input} (its last axis the site's input features) and host initializer
     * {@code source} ({@link Init#CORDA_A}, {@link Init#CORDA_B}); {@code smallest}: the smallest
     * singular triplets instead of the largest.
     */
    public ParameterBuilder initFromCovariance(Init init, String source, double scale, String input, boolean smallest) {
      initFromHost(init, source, scale);
      p.setCovarianceInput(input).setSmallestComponents(smallest);
      return this;
    }

    /**
     * Records {@code tensor}, the inference graph's value of the site's input, for the run time to
     * read the site's features ({@code AdapterModel.siteFeatures}).
     */
    public ParameterBuilder siteInput(String tensor) {
      p.setSiteInput(tensor);
      return this;
    }

    /** Never updated by the training step. */
    public ParameterBuilder frozen() {
      p.setFrozen(true);
      return this;
    }

    /**
     * Axis {@code axis} of the shape is the rank: an unmerged export makes it the symbolic
     * {@code lora_r} and defaults the parameter to size 0 there, which must make the adapter add
     * nothing (the other factor of a product, a bottleneck's width).
     */
    public ParameterBuilder exportRankAxis(int axis) {
      if (axis < 0 || axis >= p.getShapeCount()) {
        throw new IllegalArgumentException(p.getName() + " has no axis " + axis + ": " + p.getShapeList());
      }
      p.setExportRankAxis(axis + 1);
      return this;
    }

    /**
     * An unmerged export keeps the exported value when nothing is fed ({@link ExportDefault#CURRENT}):
     * for a kind no value of which makes it the identity.
     */
    public ParameterBuilder exportCurrentByDefault() {
      p.setExportDefault(ExportDefault.EXPORT_DEFAULT_CURRENT);
      return this;
    }

    /**
     * Updated by the training step only where the bool tensor {@code mask} (the parameter's shape,
     * a value of the training graph) is true; elsewhere the parameter and its moments are kept.
     */
    public ParameterBuilder updateMask(String mask) {
      p.setUpdateMask(mask);
      return this;
    }

    /** Not decayed by AdamW. */
    public ParameterBuilder noDecay() {
      p.setNoDecay(true);
      return this;
    }

    /** Saved under {@code key} in the parameter's own shape. */
    public ParameterBuilder save(String key) {
      p.setSaveKey(key).clearSaveShape().addAllSaveShape(p.getShapeList()).setSaveTransposed(false);
      return this;
    }

    /** Saved under {@code key} with shape {@code savedShape} (same element count, same order). */
    public ParameterBuilder save(String key, long... savedShape) {
      p.setSaveKey(key).clearSaveShape().setSaveTransposed(false);
      for (long d : savedShape) {
        p.addSaveShape(d);
      }
      return this;
    }

    /** Saved under {@code key} as the transpose of this 2-D parameter (PEFT's {@code [out, in]}). */
    public ParameterBuilder saveTransposed(String key) {
      if (p.getShapeCount() != 2) {
        throw new IllegalStateException(p.getName() + " is not 2-D: " + p.getShapeList());
      }
      p.setSaveKey(key).clearSaveShape().addSaveShape(p.getShape(1)).addSaveShape(p.getShape(0))
          .setSaveTransposed(true);
      return this;
    }

    /**
     * Adds it as a graph input of the host's element type and returns the value to read: its name,
     * or its straight-through quantized value when the declaration is {@linkplain #quantize
     * quantized} and it is a trainable tensor of two or more axes.
     */
    public String add() {
      p.setAdapter(adapter);
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      boolean quantize = quantizeBits > 0 && shape.length >= 2 && !p.getFrozen() && p.getInit() != Init.HOST_COPY;
      if (quantize) {
        p.setQuantizeBits(quantizeBits);
        for (double level : LloydMax.levels(quantizeBits)) {
          p.addQuantizeLevels(level);
        }
      }
      if (quantize) {
        p.setQuantizeEpsilon(QuantizedWeights.EPSILON);
      }
      Parameter built = p.build();
      graph.addInput(built.getName(), TensorType.of(elemType, shape));
      parameters.add(built);
      if (!quantize) {
        return built.getName();
      }
      quantized++;
      Parameter stats = Parameter.newBuilder().setName(built.getName() + QuantizedWeights.STATS_SUFFIX)
          .setSite(built.getSite()).setSiteNode(built.getSiteNode()).setRole(ParameterRole.ADAPTER)
          .setAdapter(adapter).addShape(2).setFrozen(true).setNoDecay(true).setInit(Init.QUANTIZE_STATS)
          .setQuantizeStatsOf(built.getName()).setExportDefault(ExportDefault.EXPORT_DEFAULT_CURRENT).build();
      graph.addInput(stats.getName(), TensorType.of(elemType, new long[] {2}));
      parameters.add(stats);
      return QuantizedWeights.straightThrough(graph, built.getName(), stats.getName(), shape, quantizeBits, elemType);
    }
  }

  /** PEFT's key of a site's tensor: {@code base_model.model.<module path>.<suffix>}. */
  public static String peftKey(Site site, String suffix) {
    return PEFT_PREFIX + site.modulePath() + "." + suffix;
  }
}
