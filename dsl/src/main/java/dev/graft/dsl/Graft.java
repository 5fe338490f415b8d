package dev.graft.dsl;

import dev.graft.compiler.CompiledGraft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.Composition;
import dev.graft.compiler.spec.CompositionBlock;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.compiler.spec.MultiLabelSpec;
import dev.graft.compiler.spec.RegressionSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.compiler.spec.TokenClassificationSpec;
import dev.graft.compiler.tasks.TaskKind;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * The builder front-end: the same declarations as the annotations, at run time.
 *
 * <pre>{@code
 * CompiledGraft graft = Graft.host(Path.of("all-minilm-l6-v2.onnx"))
 *     .lora(".*(query|value)/MatMul", l -> l.rank(8).alpha(16))
 *     .classification(2)
 *     .compile();
 * }</pre>
 *
 * In Kotlin: {@code Graft.host(path).lora(".*query.*") { rank = 8 }.classification(2).compile()}.
 */
public final class Graft {
  private final HostModel host;
  private String name = "Graft";
  private final List<AdapterSpec> adapters = new ArrayList<>();
  private @Nullable TaskSpec task;
  private AdamWSpec optimizer = AdamWSpec.DEFAULT;
  private final List<Composition> compositions = new ArrayList<>();
  private final List<String> train = new ArrayList<>();
  private Int8Backward int8Backward = Int8Backward.DEQUANTIZED;

  private Graft(HostModel host) {
    this.host = host;
  }

  public static Graft host(Path model) {
    return new Graft(HostModel.read(model));
  }

  public static Graft host(HostModel model) {
    return new Graft(model);
  }

  /**
   * The declaration a Hugging Face PEFT adapter folder implies on {@code host}, without writing
   * one: the kind and options from its {@code adapter_config.json} (LoRA with DoRA, rsLoRA or
   * PiSSA, IA³, LoHa, LoKr, VeRA), the linear layers its {@code target_modules} take (short
   * names, full module paths or a regex, in the layout its keys use: bare, {@code bert.}, {@code
   * model.}, {@code transformer.}) and, where {@code modules_to_save} names {@code classifier}
   * and the file holds its weight, a classification head of that many labels. The builder can be
   * changed before {@link #open} or {@link #compile}; then {@code loadAdapter(peftFolder)}.
   *
   * @throws GraftCompileException {@code GRAFT150} for a PEFT type or option Graft cannot
   *     express, {@code GRAFT151} when {@code target_modules} take no linear layer of the host
   */
  public static Graft fromPeft(HostModel host, Path peftFolder) {
    return PeftDeclaration.declare(host, peftFolder);
  }

  /** {@link #fromPeft(HostModel, Path)} on the host ONNX file {@code host}. */
  public static Graft fromPeft(Path host, Path peftFolder) {
    return fromPeft(HostModel.read(host), peftFolder);
  }

  /** A name for the compiled graft (used in resource and manifest names). */
  public Graft name(String value) {
    this.name = value;
    return this;
  }

  /** LoRA with default options on the linear sites whose node names match {@code target}. */
  public Graft lora(String target) {
    return lora(target, l -> {});
  }

  /** LoRA on the linear sites whose node names match {@code target} in full; options: rank, alpha, dropout, rslora. */
  public Graft lora(String target, Configure<AdapterOptions> configure) {
    return adapter("lora", target, configure);
  }

  /**
   * An adapter of kind {@code kind} (an id of {@link dev.graft.compiler.kinds.AdapterKinds}, e.g.
   * {@code "lokr"}) on the sites whose node names match {@code target} in full (empty: the
   * kind's default sites).
   */
  public Graft adapter(String kind, String target, Configure<AdapterOptions> configure) {
    AdapterOptions o = new AdapterOptions(kind);
    configure.apply(o);
    adapters.add(new AdapterSpec(kind, target, o.getLayers(), o.getValues(), null, o.getName()));
    return this;
  }

  /** Combines named adapters at the linear layers they share, e.g. {@code compose(stack(ref("lang"), fuse("a", "b")))}. */
  public Graft compose(CompositionBlock block) {
    compositions.add(Composition.of(block));
    return this;
  }

  /** The named adapters the training step updates (default: every one); the others are frozen. */
  public Graft train(String... names) {
    return train(List.of(names));
  }

  public Graft train(List<String> names) {
    train.addAll(names);
    return this;
  }

  /** A named adapter as a member of a block. */
  public static CompositionBlock ref(String name) {
    return new CompositionBlock.AdapterRef(name);
  }

  /** A member with a weight (under {@code average}) or a width (under {@code split}). */
  public static CompositionBlock.Member weighted(String name, double weight) {
    return new CompositionBlock.Member(ref(name), weight);
  }

  /** A block member with a weight or width. */
  public static CompositionBlock.Member weighted(CompositionBlock block, double weight) {
    return new CompositionBlock.Member(block, weight);
  }

  /** {@code stack(a, b, …)}: the members in series, left to right. */
  public static CompositionBlock stack(String... names) {
    return block(CompositionBlock.Operator.STACK, refs(names));
  }

  public static CompositionBlock stack(CompositionBlock... members) {
    return stack(List.of(members));
  }

  public static CompositionBlock stack(List<CompositionBlock> members) {
    return block(CompositionBlock.Operator.STACK, members);
  }

  /** {@code parallel(a, b, …)}: the sum of the members' updates. */
  public static CompositionBlock parallel(String... names) {
    return block(CompositionBlock.Operator.PARALLEL, refs(names));
  }

  public static CompositionBlock parallel(CompositionBlock... members) {
    return parallel(List.of(members));
  }

  public static CompositionBlock parallel(List<CompositionBlock> members) {
    return block(CompositionBlock.Operator.PARALLEL, members);
  }

  /** {@code average(a, b, …)}: the members' updates weighted by learned weights (a softmax per site). */
  public static CompositionBlock average(String... names) {
    return block(CompositionBlock.Operator.AVERAGE, refs(names));
  }

  public static CompositionBlock average(CompositionBlock... members) {
    return average(List.of(members));
  }

  public static CompositionBlock average(List<CompositionBlock> members) {
    return block(CompositionBlock.Operator.AVERAGE, members);
  }

  /** {@code average(a: 0.25, b: 0.75)}: fixed weights summing to 1, e.g. {@code average(weighted("a", .25), weighted("b", .75))}. */
  public static CompositionBlock average(CompositionBlock.Member... members) {
    return new CompositionBlock.Combination(CompositionBlock.Operator.AVERAGE, List.of(members));
  }

  /** {@code fuse(a, b, …)}: AdapterFusion over the members (which stay frozen). */
  public static CompositionBlock fuse(String... names) {
    return block(CompositionBlock.Operator.FUSE, refs(names));
  }

  public static CompositionBlock fuse(List<String> names) {
    return fuse(names.toArray(String[]::new));
  }

  /** {@code split(a: 192, b: 192)}: member i on the i-th part of the hidden axis, e.g. {@code split(weighted("a", 192), weighted("b", 192))}. */
  public static CompositionBlock split(CompositionBlock.Member... members) {
    return new CompositionBlock.Combination(CompositionBlock.Operator.SPLIT, List.of(members));
  }

  public static CompositionBlock split(List<CompositionBlock.Member> members) {
    return new CompositionBlock.Combination(CompositionBlock.Operator.SPLIT, members);
  }

  private static List<CompositionBlock> refs(String... names) {
    return java.util.Arrays.stream(names).map(Graft::ref).toList();
  }

  private static CompositionBlock block(CompositionBlock.Operator op, List<CompositionBlock> members) {
    return new CompositionBlock.Combination(op,
        members.stream().map(m -> new CompositionBlock.Member(m, null)).toList());
  }


  /** DyLoRA with default options on the linear sites whose node names match {@code target} (empty: query and value). */
  public Graft dylora(String target) {
    return dylora(target, l -> {});
  }

  /** DyLoRA on the linear sites whose node names match {@code target} in full; options: rank (the maximum), alpha, dropout. */
  public Graft dylora(String target, Configure<AdapterOptions> configure) {
    return adapter("dylora", target, configure);
  }

  /** LoKr with default options on the sites {@code target} matches (empty: query and value). */
  public Graft lokr(String target) {
    return lokr(target, o -> {});
  }

  /** LoKr (Kronecker-product update) on the sites {@code target} matches; options: rank, alpha, dropout, factor, decomposeBoth. */
  public Graft lokr(String target, Configure<AdapterOptions> configure) {
    return adapter("lokr", target, configure);
  }

  /** LoHa with default options on the sites {@code target} matches (empty: query and value). */
  public Graft loha(String target) {
    return loha(target, o -> {});
  }

  /** LoHa (Hadamard product of two low-rank products) on the sites {@code target} matches; options: rank, alpha, dropout. */
  public Graft loha(String target, Configure<AdapterOptions> configure) {
    return adapter("loha", target, configure);
  }

  /** VeRA with default options on the sites {@code target} matches (empty: query and value). */
  public Graft vera(String target) {
    return vera(target, o -> {});
  }

  /** VeRA (shared frozen random projections, trained scaling vectors) on the sites {@code target} matches; options: rank, dInitial, dropout, saveProjection. */
  public Graft vera(String target, Configure<AdapterOptions> configure) {
    return adapter("vera", target, configure);
  }

  /** IA³ with default options on the sites {@code target} matches (empty: key, value and the feed-forward output). */
  public Graft ia3(String target) {
    return ia3(target, o -> {});
  }

  /** IA³ (learned scaling vectors) on the sites {@code target} matches; option: feedforward. */
  public Graft ia3(String target, Configure<AdapterOptions> configure) {
    return adapter("ia3", target, configure);
  }

  /** A sequential bottleneck adapter with default options on its {@code config}'s default sites (after each feed-forward output). */
  public Graft bottleneck() {
    return bottleneck("", o -> {});
  }

  /**
   * A sequential bottleneck adapter {@code h + up(act(down(h)))} on the outputs of the linear
   * sites whose node names match {@code target} (empty: the sites of option config); options:
   * config, reduction, nonlinearity, residual, initWeights.
   */
  public Graft bottleneck(String target, Configure<AdapterOptions> configure) {
    return adapter("bottleneck", target, configure);
  }

  /** A parallel adapter with default options beside every layer's feed-forward block. */
  public Graft parallelAdapter() {
    return parallelAdapter("", o -> {});
  }

  /**
   * A parallel adapter {@code h + scaling · up(act(down(x)))} beside the feed-forward blocks whose
   * last linear node matches {@code target} (empty: every layer's); options: reduction,
   * nonlinearity, scaling, initWeights.
   */
  public Graft parallelAdapter(String target, Configure<AdapterOptions> configure) {
    return adapter("parallel", target, configure);
  }

  /** Hydra with default options on every layer's feed-forward block. */
  public Graft hydra() {
    return hydra("", o -> {});
  }

  /**
   * Hydra {@code h + scaling · (P(x) + S(h))} on the feed-forward blocks whose last linear node
   * matches {@code target} (empty: every layer's); options: reduction, nonlinearity, scaling,
   * initWeights.
   */
  public Graft hydra(String target, Configure<AdapterOptions> configure) {
    return adapter("hydra", target, configure);
  }

  /** BitFit on every bias of the host. */
  public Graft bitFit() {
    return bitFit("", o -> {});
  }

  /** BitFit: trains the host biases whose names match {@code target} (empty: all); options: layers. */
  public Graft bitFit(String target, Configure<AdapterOptions> configure) {
    return adapter("bitfit", target, configure);
  }

  /** Trains every LayerNorm weight and bias of the host. */
  public Graft layerNormTuning() {
    return layerNormTuning("", o -> {});
  }

  /** Trains the host's LayerNorm weights and biases whose names match {@code target} (empty: all); options: layers. */
  public Graft layerNormTuning(String target, Configure<AdapterOptions> configure) {
    return adapter("layernorm", target, configure);
  }

  /** Trains the weight and bias of the linear sites whose node names match {@code target} in full (PEFT's modules_to_save). */
  public Graft trainModules(String target) {
    return trainModules(target, o -> {});
  }

  /** Full tuning of the linear sites whose node names match {@code target} (required); options: layers. */
  public Graft trainModules(String target, Configure<AdapterOptions> configure) {
    return adapter("full", target, configure);
  }



  /** Prompt tuning on the host's word-embedding lookup (found by itself); options: tokens, init ("vocab", "random"). */
  public Graft promptTuning(Configure<AdapterOptions> configure) {
    return adapter("prompt_tuning", "", configure);
  }

  /** Prefix tuning on every attention block; options: tokens, projection, projectionHidden, layers. */
  public Graft prefixTuning(Configure<AdapterOptions> configure) {
    return adapter("prefix_tuning", "", configure);
  }

  /** Prefix tuning on the attention blocks whose scores MatMul node names match {@code target} in full. */
  public Graft prefixTuning(String target, Configure<AdapterOptions> configure) {
    return adapter("prefix_tuning", target, configure);
  }



  /**
   * A mixture of LoRA experts on the linear sites whose node names match {@code target} (empty:
   * the query and value projections); options: rank, alpha, dropout, experts, expertsPerLayer,
   * router ("soft", "top_k"), topK, auxLossWeight, layers.
   */
  public Graft mixtureOfLora(String target, Configure<AdapterOptions> configure) {
    return adapter("mixture_lora", target, configure);
  }

  /**
   * Multi-head routing over shared LoRA pieces on the linear sites whose node names match {@code
   * target} (empty: the query and value projections); options: rank, alpha, dropout, pieces,
   * heads, sharePieces, layers.
   */
  public Graft multiHeadRouting(String target, Configure<AdapterOptions> configure) {
    return adapter("multi_head_routing", target, configure);
  }

  /** Earth-Adapter with its defaults on each layer's feed-forward output dense. */
  public Graft earthAdapter() {
    return earthAdapter("", o -> {});
  }

  /**
   * Earth-Adapter (a mixture of frequency adaptation) at the linear layers matching {@code target}
   * (empty: each layer's feed-forward output dense) of a vision transformer whose tokens are a patch
   * grid: on the block output their output is added into ({@code input = "block"}, the default) or
   * on their output ({@code "output"}); options: input, cutoff, mask, reduction, nonlinearity,
   * initWeights, gridHeight, gridWidth, extraTokens, layers, name.
   */
  public Graft earthAdapter(String target, Configure<AdapterOptions> configure) {
    return adapter("earth", target, configure);
  }

  /** MoSA with default options (4 modules, 1 active per step) after each feed-forward output. */
  public Graft mosa() {
    return mosa("", o -> {});
  }

  /**
   * MoSA, a mixture of sparse adapters: a sequential bottleneck on the outputs of the linear sites
   * whose node names match {@code target} (empty: the sites of option config) whose entries are
   * split into disjoint random modules, a few of them trained each step; inference uses the merged
   * (whole) adapter. Options: config, reduction, nonlinearity, initWeights, modules, active,
   * partitionSeed, split (up: the reference's), rescale, draw (site: each site draws its own modules).
   */
  public Graft mosa(String target, Configure<AdapterOptions> configure) {
    return adapter("mosa", target, configure);
  }

  /**
   * LT-SFT's sparse fine-tuning of the linear weights whose node names match {@code target} in
   * full (empty: every linear layer): each weight is read as {@code W + Δ}, Δ trained where the
   * runtime's update mask is true ({@code dev.graft.runtime.train.SparseFineTuning} drives the two
   * phases). No options: l1Reg 0.
   */
  public Graft sparseFineTuning(String target) {
    return adapter("ltsft", target, o -> {});
  }

  /**
   * {@link #sparseFineTuning(String)} with options: l1Reg (λ of the L1 pull toward the host
   * weights, λ·Σ|Δ| / the host's parameter count in the loss, as composable-sft's
   * {@code sparse_l1_reg}), layers.
   */
  public Graft sparseFineTuning(String target, Configure<AdapterOptions> configure) {
    return adapter("ltsft", target, configure);
  }

  /**
   * SEMA's mixture of adapters beside the feed-forward blocks whose last linear node matches {@code
   * target} (empty: every layer's): a pool of parallel adapters per layer mixed by a softmax router;
   * options: reduction, poolPerLayer, frozenPerLayer, layers. The continual-learning loop that grows
   * the pools is {@link dev.graft.dsl.continual.Sema}.
   */
  public Graft sema(String target, Configure<AdapterOptions> configure) {
    return adapter("sema", target, configure);
  }

  /** SoKA with default options on the sites {@code target} matches (empty: query and value). */
  public Graft soka(String target) {
    return soka(target, o -> {});
  }

  /**
   * SoKA (the principal Kronecker-product SVD terms of each host weight train, the residual stays)
   * on the sites {@code target} matches; options: inFactor, outFactor, rule, energy, maxTerms.
   */
  public Graft soka(String target, Configure<AdapterOptions> configure) {
    return adapter("soka", target, configure);
  }

  /** SketchTune with default options on the sites {@code target} matches (empty: query and value). */
  public Graft sketchTune(String target) {
    return sketchTune(target, o -> {});
  }

  /**
   * SketchTune (each host weight replaced by 4-bit indices into trainable 16-value codebooks per
   * group of output channels, or per column group of them) on the sites {@code target} matches;
   * options: groupSize, groupsPerRow, iterations.
   */
  public Graft sketchTune(String target, Configure<AdapterOptions> configure) {
    return adapter("sketchtune", target, configure);
  }


  /** A classification head with mean pooling over the host's first output. */
  public Graft classification(int labels) {
    return classification(labels, h -> {});
  }

  /**
   * A classification head trained with softmax cross-entropy; options: pooling, output,
   * {@code ignoreIndex} (default -100), {@code labelSmoothing} (default 0).
   */
  public Graft classification(int labels, Configure<ClassificationOptions> configure) {
    ClassificationOptions o = new ClassificationOptions();
    configure.apply(o);
    return task(new ClassificationSpec(labels, o.pooling, o.output, o.ignoreIndex, o.labelSmoothing, null));
  }

  /** A regression head with mean pooling over the host's first output, trained with the mean squared error. */
  public Graft regression(int targets) {
    return regression(targets, h -> {});
  }

  /** A regression head to {@code targets} outputs, trained with the mean squared error. */
  public Graft regression(int targets, Configure<HeadOptions> configure) {
    HeadOptions o = new HeadOptions();
    configure.apply(o);
    return task(new RegressionSpec(targets, o.pooling, o.output, null));
  }

  /** A multi-label head with mean pooling over the host's first output, trained with binary cross-entropy. */
  public Graft multiLabel(int labels) {
    return multiLabel(labels, h -> {});
  }

  /** A multi-label head to {@code labels} independent logits, trained with binary cross-entropy with logits. */
  public Graft multiLabel(int labels, Configure<HeadOptions> configure) {
    HeadOptions o = new HeadOptions();
    configure.apply(o);
    return task(new MultiLabelSpec(labels, o.pooling, o.output, null));
  }

  /** The causal language-model loss on the host's first output (vocabulary logits). */
  public Graft causalLm() {
    return causalLm(o -> {});
  }

  /** The causal language-model loss; options: output, {@code ignoreIndex} (default -100), {@code labelSmoothing}. */
  public Graft causalLm(Configure<CausalLmOptions> configure) {
    CausalLmOptions o = new CausalLmOptions();
    configure.apply(o);
    return task(new CausalLmSpec(o.output, o.ignoreIndex, o.labelSmoothing, null));
  }

  /** A token-classification head to {@code labels} classes per token over the host's first output. */
  public Graft tokenClassification(int labels) {
    return tokenClassification(labels, o -> {});
  }

  /**
   * A linear head per token to {@code labels} classes, trained with softmax cross-entropy over the
   * tokens (ignore index and attention mask 0 left out); options: output, {@code ignoreIndex}
   * (default -100).
   */
  public Graft tokenClassification(int labels, Configure<TokenClassificationOptions> configure) {
    TokenClassificationOptions o = new TokenClassificationOptions();
    configure.apply(o);
    return task(new TokenClassificationSpec(labels, o.output, o.ignoreIndex, null));
  }

  private Graft task(TaskSpec value) {
    if (task != null) {
      throw new IllegalStateException("a graft has one task; " + TaskKind.of(task).displayName()
          + " is declared already, " + TaskKind.of(value).displayName() + " is one too many");
    }
    task = value;
    return this;
  }

  public Graft adamW(Configure<AdamWOptions> configure) {
    AdamWOptions o = new AdamWOptions();
    configure.apply(o);
    optimizer = new AdamWSpec(o.beta1, o.beta2, o.epsilon, o.weightDecay);
    return this;
  }

  /**
   * How the training step's backward pass multiplies by the host's frozen weights (int8 layers of
   * an int8 host, float32 {@code MatMul} weights): {@link Int8Backward#DEQUANTIZED} (the default;
   * float32, exact) or {@link Int8Backward#INTEGER} (the gradient quantized to uint8, int8
   * products: faster on the CPU, approximate). The forward pass is the same either way. Anything but
   * the default on a graft whose gradient multiplies by no frozen weight is GRAFT201.
   */
  public Graft int8Backward(Int8Backward value) {
    int8Backward = Objects.requireNonNull(value, "int8Backward");
    return this;
  }

  /** The declaration as the compiler sees it. */
  public GraftSpec spec() {
    if (task == null) {
      throw new IllegalStateException(
          "declare a task first: .classification(2), .regression(1), .multiLabel(3), .causalLm() or "
              + ".tokenClassification(5)");
    }
    return new GraftSpec(name, host.name(), adapters, task, optimizer, null, compositions, train, int8Backward);
  }

  /**
   * Compiles against the host.
   *
   * @throws dev.graft.compiler.diag.GraftCompileException with every error of the declaration
   */
  public CompiledGraft compile() {
    return GraftCompiler.compile(spec(), host).orThrow();
  }

  /**
   * Compiles against the host with the variants compiled only when asked for, e.g. {@link
   * GraphVariant#GATHERED} (the multi-adapter graph {@code AdapterServer} serves), {@link
   * GraphVariant#GRADIENT} and {@link GraphVariant#APPLY} (data-parallel training; asking for
   * either compiles both).
   */
  public CompiledGraft compile(GraphVariant... also) {
    return GraftCompiler.compile(spec(), host, Set.of(also)).orThrow();
  }

  /** Compiles the declaration and opens it on ONNX Runtime: {@link #compile()}, then {@link AdapterModel#open}. */
  public AdapterModel open(ModelOptions options) {
    return AdapterModel.open(graphs(compile()), options);
  }

  /** The graphs of a graft compiled at run time, as the runtime opens them. */
  public static AdapterGraphs graphs(CompiledGraft graft) {
    return AdapterGraphs.of(graft.manifest(), graft.inference().toByteArray(), graft.train().toByteArray(),
        graft.update().toByteArray(), graft.merge().toByteArray(),
        graft.gathered() == null ? null : graft.gathered().toByteArray(),
        graft.gradient() == null ? null : graft.gradient().toByteArray(),
        graft.apply() == null ? null : graft.apply().toByteArray());
  }


  /**
   * A configuration block; the last parameter of builder methods, so Kotlin can pass a lambda.
   * With Kotlin's sam-with-receiver plugin (see {@link HasImplicitReceiver}) the options are the
   * lambda's receiver: {@code { rank = 8 }}; without it, its parameter: {@code { it.rank = 8 }}.
   */
  @HasImplicitReceiver
  @FunctionalInterface
  public interface Configure<T> {
    void apply(T options);
  }

  /** Classification head options: pooling, output, ignore index and label smoothing. */
  public static final class ClassificationOptions {
    private ClassificationSpec.Pooling pooling = ClassificationSpec.Pooling.MEAN;
    private String output = "";
    private long ignoreIndex = TaskSpec.DEFAULT_IGNORE_INDEX;
    private double labelSmoothing;

    public ClassificationOptions pooling(ClassificationSpec.Pooling value) {
      pooling = value;
      return this;
    }

    public ClassificationOptions output(String value) {
      output = value;
      return this;
    }

    /** Labels equal to this contribute nothing to the loss (default -100). */
    public ClassificationOptions ignoreIndex(long value) {
      ignoreIndex = value;
      return this;
    }

    /** ε in [0, 1): the loss is (1-ε)·NLL + ε·mean over classes of −log p (default 0). */
    public ClassificationOptions labelSmoothing(double value) {
      labelSmoothing = value;
      return this;
    }

    public ClassificationSpec.Pooling getPooling() {
      return pooling;
    }

    public void setPooling(ClassificationSpec.Pooling value) {
      pooling = value;
    }

    public String getOutput() {
      return output;
    }

    public void setOutput(String value) {
      output = value;
    }

    public long getIgnoreIndex() {
      return ignoreIndex;
    }

    public void setIgnoreIndex(long value) {
      ignoreIndex = value;
    }

    public double getLabelSmoothing() {
      return labelSmoothing;
    }

    public void setLabelSmoothing(double value) {
      labelSmoothing = value;
    }
  }

  /** Causal LM options: the logits output, ignore index and label smoothing. */
  public static final class CausalLmOptions {
    private String output = "";
    private long ignoreIndex = TaskSpec.DEFAULT_IGNORE_INDEX;
    private double labelSmoothing;

    /** The host output holding vocabulary logits [batch, sequence, vocab] (default: the first). */
    public CausalLmOptions output(String value) {
      output = value;
      return this;
    }

    /** Next-token labels equal to this contribute nothing (default -100). */
    public CausalLmOptions ignoreIndex(long value) {
      ignoreIndex = value;
      return this;
    }

    public CausalLmOptions labelSmoothing(double value) {
      labelSmoothing = value;
      return this;
    }

    public String getOutput() {
      return output;
    }

    public void setOutput(String value) {
      output = value;
    }

    public long getIgnoreIndex() {
      return ignoreIndex;
    }

    public void setIgnoreIndex(long value) {
      ignoreIndex = value;
    }

    public double getLabelSmoothing() {
      return labelSmoothing;
    }

    public void setLabelSmoothing(double value) {
      labelSmoothing = value;
    }
  }

  /** Token-classification options: the hidden-states output and the ignore index. */
  public static final class TokenClassificationOptions {
    private String output = "";
    private long ignoreIndex = TaskSpec.DEFAULT_IGNORE_INDEX;

    /** The host output holding hidden states [batch, sequence, hidden] (default: the first). */
    public TokenClassificationOptions output(String value) {
      output = value;
      return this;
    }

    /** Token labels equal to this contribute nothing (default -100). */
    public TokenClassificationOptions ignoreIndex(long value) {
      ignoreIndex = value;
      return this;
    }

    public String getOutput() {
      return output;
    }

    public void setOutput(String value) {
      output = value;
    }

    public long getIgnoreIndex() {
      return ignoreIndex;
    }

    public void setIgnoreIndex(long value) {
      ignoreIndex = value;
    }
  }

  /** Pooled head options (regression, multi-label): pooling and the host output. */
  public static final class HeadOptions {
    private ClassificationSpec.Pooling pooling = ClassificationSpec.Pooling.MEAN;
    private String output = "";

    public HeadOptions pooling(ClassificationSpec.Pooling value) {
      pooling = value;
      return this;
    }

    public HeadOptions output(String value) {
      output = value;
      return this;
    }

    public ClassificationSpec.Pooling getPooling() {
      return pooling;
    }

    public void setPooling(ClassificationSpec.Pooling value) {
      pooling = value;
    }

    public String getOutput() {
      return output;
    }

    public void setOutput(String value) {
      output = value;
    }
  }

  /** AdamW options; the learning rate is given per step at run time. */
  public static final class AdamWOptions {
    private double beta1 = AdamWSpec.DEFAULT.beta1();
    private double beta2 = AdamWSpec.DEFAULT.beta2();
    private double epsilon = AdamWSpec.DEFAULT.epsilon();
    private double weightDecay = AdamWSpec.DEFAULT.weightDecay();

    public AdamWOptions beta1(double v) {
      beta1 = v;
      return this;
    }

    public AdamWOptions beta2(double v) {
      beta2 = v;
      return this;
    }

    public AdamWOptions epsilon(double v) {
      epsilon = v;
      return this;
    }

    public AdamWOptions weightDecay(double v) {
      weightDecay = v;
      return this;
    }

    public double getBeta1() {
      return beta1;
    }

    public void setBeta1(double v) {
      beta1 = v;
    }

    public double getBeta2() {
      return beta2;
    }

    public void setBeta2(double v) {
      beta2 = v;
    }

    public double getEpsilon() {
      return epsilon;
    }

    public void setEpsilon(double v) {
      epsilon = v;
    }

    public double getWeightDecay() {
      return weightDecay;
    }

    public void setWeightDecay(double v) {
      weightDecay = v;
    }
  }
}
