package dev.graft.compiler.diag;

import java.util.Locale;

/** The catalog of Graft's compile-time errors. Codes are stable; messages may improve. */
public enum ErrorCode {
  HOST_NOT_FOUND(1, "host model %s not found; looked in %s"),
  HOST_UNREADABLE(2, "host model %s cannot be read as ONNX: %s"),
  HOST_OPSET_UNSUPPORTED(3, "host model %s uses ai.onnx opset %d; Graft supports opsets 11 to 23%s"),
  /** External data the host may not read (args: host, which tensor, what is wrong). */
  HOST_EXTERNAL_DATA_REFUSED(5, "host model %s: %s %s"),
  /** A host graph the import cannot take: a cycle, a bad index, data shorter than its dims (args: host, what). */
  HOST_GRAPH_INVALID(6, "host model %s is not a graph Graft can import: %s"),
  /** A host size beyond what Graft handles (args: host, what, limit). */
  HOST_SIZE_TOO_LARGE(7, "host model %s declares %s; the limit is %s"),
  NOT_AN_INTERFACE(4, "@Graft must be put on an interface; %s is %s"),
  SELECTOR_INVALID(10, "selector '%s' is not a valid regular expression: %s"),
  SELECTOR_MATCHES_NOTHING(11, "selector '%s' matches no %s site of %s%s; nearest node names: %s"),
  /** An adapter option outside its range or choices (args: kind, option, expectation, value). */
  OPTION_OUT_OF_RANGE(12, "%s %s must be %s, got %s"),
  OPTION_NOT_POSITIVE(13, "%s %s must be %s, got %s"),
  OPTION_NOT_A_PROBABILITY(14, "%s %s must be %s, got %s"),
  SITES_OVERLAP(15, "%s selector '%s' and %s selector '%s' both take %s; one adapter per site (compose them instead)"),
  LAYERS_INVALID(16, "layer filter %s selects no layer of %s; the host has layers %s"),
  ADAPTER_KIND_UNKNOWN(17, "unknown adapter kind '%s'; known kinds: %s"),
  ADAPTER_OPTION_UNKNOWN(19, "%s has no option '%s' of that type (given %s); its options are %s"),
  NOTHING_TO_TRAIN(18, "%s has no trainable parameter: %s adds no head; declare an adapter such as @Lora"),
  HEAD_LABELS_OUT_OF_RANGE(20, "classification needs at least 2 labels, got %d"),
  HEAD_OUTPUT_NOT_FOUND(21, "host output '%s' not found; the host's outputs are %s"),
  TASK_MISSING(23, "%s declares no task; add @Classification(labels = ...), @Regression, @MultiLabel or @CausalLm"),
  HEAD_OUTPUT_SHAPE(22, "host output '%s' must have shape [batch, sequence, hidden] with a fixed hidden size, got %s"),
  LABEL_SMOOTHING_OUT_OF_RANGE(24, "label smoothing must be in [0, 1), got %s"),
  IGNORE_INDEX_IS_A_CLASS(25, "ignore index %d is a class index in [0, %d); pick a value outside it, e.g. -100"),
  TASK_SIZE_OUT_OF_RANGE(26, "%s needs at least 1 %s, got %d"),
  LM_OUTPUT_SHAPE(27, "host output '%s' must be vocabulary logits [batch, sequence, vocab] with a fixed vocab size >= 2, got %s"),
  LM_INPUT_IDS_MISSING(28, "the causal LM loss takes its labels from host input 'input_ids' (integer [batch, sequence]); the host's inputs are %s"),
  TASKS_CONFLICT(29, "%s declares %d tasks (%s); declare exactly one"),
  NO_GRADIENT_RULE(30, "no gradient rule for op %s (domain '%s', opset %d) at node '%s'; ops with rules: %s"),
  OPTIMIZER_INVALID(40, "AdamW %s must be in %s, got %s"),
  OUTPUT_WRITE_FAILED(50, "cannot write %s: %s"),
  SITE_NOT_FOUND(60, "cannot place %s on %s: %s"),
  ADAPTER_OPTIONS_INVALID(61, "%s options do not fit the host: %s"),
  // 62..65: LoRA family; 66..69: LoKr, LoHa, VeRA, IA³; 70..74: bottleneck, parallel, Hydra,
  // host-parameter tuning; 75..79: prompt and prefix tuning.
  /** A LoRA-family option the site cannot take (args: kind, option, node, why). */
  LORA_FAMILY_SITE_UNSUPPORTED(62, "%s %s cannot go on %s: %s"),
  /** PiSSA at a rank above the site weight's (args: rank, node, in, out, limit). */
  PISSA_RANK_TOO_LARGE(63, "PiSSA rank %d exceeds the rank of the weight of %s [%d, %d]; use rank <= %d"),
  /** Mixture of LoRA experts: expertsPerLayer of the wrong length (args: kind, entries, layer count, layers). */
  MIXTURE_EXPERTS_PER_LAYER_LENGTH(64,
      "%s expertsPerLayer has %d entries, but the declaration selects %d layers %s; give one expert count per layer, in layer order"),
  /** Mixture of LoRA experts: expertsPerLayer on a site without a layer index (args: kind, node). */
  MIXTURE_SITE_WITHOUT_LAYER(65, "%s expertsPerLayer needs a layer index on every site, but %s has none; use experts instead"),
  /** Mixture of LoRA experts: top-k routing with k above a layer's expert count (args: kind, topK, experts, where, limit). */
  MIXTURE_TOP_K_TOO_LARGE(66, "%s topK %d exceeds the %d experts of %s; use topK <= %d"),
  /** Multi-head routing: heads that do not divide a site's input or output size (args: kind, heads, node, in, out). */
  MULTI_HEAD_ROUTING_HEADS_DO_NOT_DIVIDE(67,
      "%s heads %d must divide the input and output sizes of every site, but %s is [%d, %d]"),
  /** Prompt tuning: no word-embedding lookup of input_ids (args: kind, host, what was found). */
  PROMPT_EMBEDDING_NOT_FOUND(75, "cannot place %s on %s: %s"),
  /** Prompt tuning: a host input that cannot be extended by the virtual tokens (args: kind, host, which and why). */
  PROMPT_INPUT_NOT_EXTENDABLE(76, "cannot place %s on %s: %s"),
  /** Prefix tuning: no attention block with key and value projections (args: kind, host, what was found). */
  PREFIX_ATTENTION_NOT_FOUND(77, "cannot place %s on %s: %s"),
  /** Prefix tuning: the host's shapes or masks do not follow longer keys (args: kind, host, where and what). */
  PREFIX_SHAPES_DO_NOT_FOLLOW(78, "cannot place %s on %s: %s"),
  /** A composition that does not parse (args: expression, column, expected, found). */
  COMPOSITION_SYNTAX(80, "composition '%s' is not valid at column %d: expected %s, found %s"),
  /** A composition names an adapter no declaration has (args: composition, name, named adapters). */
  COMPOSITION_UNKNOWN_ADAPTER(81, "composition %s names '%s', but no adapter is declared with that name; the named adapters are %s"),
  /** A composition member that cannot be composed (args: composition, name, what it is). */
  COMPOSITION_NOT_COMPOSABLE(82, "composition %s: '%s' %s; blocks combine named adapters that act on a linear layer's output (LoRA, bottleneck, parallel adapter, Hydra)"),
  /** A block inside a block that cannot hold it, or nesting too deep (args: composition, what is wrong). */
  COMPOSITION_NESTING(83, "composition %s: %s"),
  /** A named adapter used more than once in the graft's compositions (args: name, count, compositions). */
  COMPOSITION_NAME_REUSED(84, "adapter '%s' appears %d times in the graft's compositions %s; each named adapter may appear once"),
  /** Members on different sites (args: composition, first name, its sites, other name, its sites). */
  COMPOSITION_SITES_DIFFER(85, "composition %s: its adapters must be placed on exactly the same linear layers; '%s' is on %s but '%s' is on %s"),
  /** Bad weights or widths (args: composition, what was expected and given). */
  COMPOSITION_WEIGHTS_INVALID(86, "composition %s: %s"),
  /** An adapter name that is malformed or taken (args: name, what is wrong). */
  ADAPTER_NAME_INVALID(87, "adapter name '%s' %s"),
  /** A train entry that names no trainable named adapter (args: name, why, named adapters). */
  TRAIN_NAME_INVALID(88, "train lists '%s', %s; the named adapters are %s"),
  /** A block with fewer than two members (args: composition, block, count). */
  COMPOSITION_TOO_FEW(89, "composition %s: %s needs at least 2 members, got %d"),
  /** An op of a custom kind's definition on operands of shapes it cannot take (args: kind, module path, op, expected, given). */
  DEFINITION_SHAPE_MISMATCH(90, "%s definition at %s: %s needs %s, got %s"),
  /** A custom kind's definition reads an option its kind does not declare with that type (args: kind, option, type read, why, options). */
  DEFINITION_OPTION_UNKNOWN(91, "%s definition reads option '%s' as %s, but %s; its options are %s"),
  /** A custom kind's definition declares one parameter name twice (args: kind, name, first shape, second shape). */
  DEFINITION_PARAMETER_DUPLICATE(92, "%s definition declares parameter '%s' twice: first %s, then %s"),
  /** Any other fault of a custom kind's definition: its result, a parameter's name or init (args: kind, module path, what). */
  DEFINITION_INVALID(93, "%s definition at %s: %s"),
  /** An adapter kind found on the class path that cannot be registered (args: kind id, class, why). */
  ADAPTER_KIND_CONFLICT(94, "cannot register adapter kind '%s' (%s): %s"),
  INTERNAL_ERROR(99, "internal error compiling %s: %s; please report it"),
  /** A PEFT folder whose config Graft cannot express as a declaration (args: folder, entry, value, why). */
  PEFT_CONFIG_UNSUPPORTED(150, "PEFT adapter %s: %s = %s cannot be declared in Graft: %s"),
  /** A PEFT folder whose target_modules take no linear layer of the host (args: folder, target_modules, host, some module paths). */
  PEFT_TARGETS_UNMATCHED(151, "PEFT adapter %s: target_modules %s take no linear layer of host %s; its linear layers are e.g. %s"),
  /** A graft with adapters that have no per-row form asked for as a gathered graph (args: graft, what cannot be gathered). */
  GATHERED_UNSUPPORTED(170, "%s cannot be compiled as a gathered multi-adapter graph: %s; serve it one adapter at a time with AdapterModel"),
  /** An op whose gradient needs an index its host computes from data (args: op, node, which index, why). */
  DATA_DEPENDENT_INDEX(180, "cannot differentiate %s at node '%s': its %s depends on the data at run time, not only on "
      + "static dimensions (%s); a gradient needs it constant or computed from fixed sizes"),
  /** A parameter the compiler adds has the name of a host value (args: parameter, its site, what the host's is). */
  PARAMETER_NAME_CLASH(181, "parameter '%s' (of %s) has the name of %s of the host; ONNX has one namespace of values, "
      + "so the host's must be renamed (or the task's output read from another value) before a graft can add it"),
  /**
   * A trainable parameter of a declaration that no gradient reaches, so it would never train
   * (args: kind, parameter, site node, why).
   */
  PARAMETER_UNREACHABLE(190, "%s parameter '%s' on %s cannot reach the loss, so it would never train: %s"),
  /** An op that has a gradient rule the node does not fit (args: op, node, exact reason). */
  GRADIENT_RULE_CANNOT_APPLY(191, "the gradient rule of op %s cannot apply at node '%s': %s"),
  /** Saved-activation bytes asked for sizes that do not fix every dimension (args: activation, dimension, what to give). */
  ACTIVATION_SIZE_UNKNOWN(192, "saved activation '%s' has %s; %s"),
  /**
   * A kind (or option) that needs the dense host weight or the layer's inside, on an int8 linear
   * site whose weight stays int8 (args: kind, what, site node, why).
   */
  INT8_SITE_UNSUPPORTED(200, "%s %s cannot go on the int8 linear site %s: %s; LoRA and the other adapters that"
      + " only read the layer's input and add to its output can"),
  /**
   * {@code int8Backward} other than DEQUANTIZED on a graft whose backward pass multiplies by no
   * frozen host weight, so the option would change nothing (args: the value).
   */
  INT8_BACKWARD_UNUSED(201, "int8Backward = %s applies to the backward pass's products with frozen host weights"
      + " (int8 linear layers, float MatMul weights), but the gradient passes none: every trained parameter is"
      + " after the host's last linear layer; leave it at DEQUANTIZED (the default)"),
  /**
   * Virtual tokens that leave no row of the host's position table to the caller's tokens (args:
   * virtual tokens, positions, input, the most virtual tokens that leave one).
   */
  VIRTUAL_TOKENS_FILL_POSITIONS(210, "the graft puts %d virtual tokens (prompt tuning) before the caller's, but the"
      + " host's position table holds %d positions, so no token of '%s' would fit; use at most %d virtual tokens"),
  /** CorDA at a rank above the site weight's (args: rank, node, in, out, limit). */
  CORDA_RANK_TOO_LARGE(340, "CorDA rank %d exceeds the rank of the weight of %s [%d, %d]; use rank <= %d"),
  /**
   * An Earth-Adapter site whose value is not a patch grid (args: kind, site node, its shape, what
   * grid was asked for).
   */
  EARTH_NO_PATCH_GRID(360, "%s at %s: the value %s is not [batch, tokens, width] with tokens = h·w or 1 + h·w"
      + " (a patch grid, optionally after a class token)%s; put it on a vision transformer layer, or give"
      + " gridHeight, gridWidth and extraTokens that fit"),
  /**
   * An Earth-Adapter cutoff that keeps every frequency of the grid, so the high-frequency part
   * would be zero and its adapter never trained (args: kind, cutoff, mask, grid, the largest cutoff that leaves one).
   */
  EARTH_CUTOFF_KEEPS_ALL(361, "%s cutoff %s (%s mask) keeps every frequency of the %s patch grid, so the"
      + " high-frequency part is zero and its adapter would never train; use a cutoff below %s"),
  /**
   * An Earth-Adapter with {@code input = block} whose target's output is not added to exactly one
   * residual (args: kind, site node, the output value, what reads it).
   */
  EARTH_NO_RESIDUAL(362, "%s at %s with input = block: its output '%s' is not added to exactly one residual"
      + " (an Add of it and a computed value of the same shape, whose sum the adapter reads and replaces); found %s;"
      + " target the linear layer whose output the block adds to its residual stream, or use input = output"),
  /**
   * A host input of an element type the generated class and the runtime do not feed (args: the
   * input, its ONNX element type).
   */
  HOST_INPUT_TYPE_UNFED(380, "host input '%s' is %s, which the generated class and the runtime do not feed (they"
      + " feed float32, float64, int64, int32 and bool host inputs); export the host with this input as one of"
      + " those, e.g. float pixels in place of uint8 ones"),
  /**
   * An Earth-Adapter box mask that keeps no frequency, c = ⌊min(h, w)·cutoff / 2⌋ = 0, so the
   * low-frequency part would be zero (args: kind, cutoff, grid, the smallest cutoff that keeps one).
   */
  EARTH_BOX_KEEPS_NONE(390, "%s cutoff %s (box mask) keeps no frequency of the %s patch grid (c = ⌊min(h, w)"
      + "·cutoff / 2⌋ = 0), so the low-frequency part is zero and its adapter would never train; use a cutoff of"
      + " at least %s"),
  /** Quantized adapters: bits that are not 1, 2, 4 or 8 (args: kind, bits given). */
  QUANTIZE_BITS_INVALID(300, "%s quantizeBits must be 1, 2, 4 or 8 (or 0 for full precision), got %s"),
  /** Quantized adapters: a kind whose trained tensors are the host's own (args: kind, why). */
  QUANTIZE_KIND_REFUSED(301, "%s cannot be quantized: %s; quantizeBits applies to an adapter's own weight tensors"),
  /** Quantized adapters: a declaration with no tensor to quantize (args: kind, bits, what it trains). */
  QUANTIZE_NOTHING(302, "%s with quantizeBits = %d quantizes nothing: it trains %s, and only trainable weight"
      + " tensors of two or more axes are quantized (vectors and biases stay full precision)"),
  /**
   * Data-parallel graphs (GraphVariant.GRADIENT/APPLY) asked of a graft whose step trains parameters under a fed
   * update mask, LT-SFT's (args: how many such parameters, the first).
   */
  DATA_PARALLEL_UPDATE_MASK(330, "data-parallel training (GraphVariant.GRADIENT and APPLY) is not available for"
      + " parameters trained under an update mask (LT-SFT's sparse phase): %d such parameters, e.g. %s; train this"
      + " graft on one replica"),
  /** SEMA: poolPerLayer or frozenPerLayer on a site without a layer index (args: kind, node). */
  SEMA_SITE_WITHOUT_LAYER(350, "%s poolPerLayer and frozenPerLayer need a layer index on every site, but %s has none"),
  /** SEMA: a per-layer option whose length is not the number of selected layers (args: kind, option, entries, layers, which). */
  SEMA_PER_LAYER_LENGTH(351,
      "%s %s has %d entries, but the declaration selects %d layers %s; give one entry per layer, in layer order"),
  /** SEMA: more frozen adapters than the pool holds at a layer (args: kind, frozen, layer, pool). */
  SEMA_FROZEN_EXCEEDS_POOL(352, "%s frozenPerLayer asks for %d frozen adapters at layer %d, but its pool holds %d;"
      + " use frozenPerLayer <= poolPerLayer"),
  // 310..329: SoKA and SketchTune.
  /** A SoKA Kronecker factor that does not divide a site's width (args: option, factor, side, width, node, width). */
  SOKA_FACTOR_MISMATCH(310, "SoKA %s %d does not divide the %s width %d of %s; use a divisor of %d, or -1 for the"
      + " near-square split"),
  /** A site whose weight SoKA cannot decompose at compile time (args: node, why). */
  SOKA_SITE_UNSUPPORTED(311, "SoKA cannot go on %s: %s"),
  /** A SketchTune group size that does not divide a site's output channels (args: group size, channels, node). */
  SKETCHTUNE_GROUP_MISMATCH(320, "SketchTune groupSize %d does not divide the %d output channels of %s; use a divisor"),
  /** A site whose weight SketchTune cannot sketch at compile time (args: node, why). */
  SKETCHTUNE_SITE_UNSUPPORTED(321, "SketchTune cannot go on %s: %s"),
  /** SketchTune groupsPerRow below 1 or not dividing a site's inputs per output channel (args: value, width, node, width). */
  SKETCHTUNE_GROUPS_PER_ROW_MISMATCH(322, "SketchTune groupsPerRow %d must be at least 1 and divide the %d inputs of"
      + " each output channel of %s; use a divisor of %d");

  private final int number;
  private final String template;

  ErrorCode(int number, String template) {
    this.number = number;
    this.template = template;
  }

  /** The stable code, e.g. {@code GRAFT012}. */
  public String code() {
    return String.format(Locale.ROOT, "GRAFT%03d", number);
  }

  /** The message with its code, e.g. {@code [GRAFT012] LoRA rank must be in 1..4096, got 0}. */
  public String format(Object... args) {
    return "[" + code() + "] " + String.format(Locale.ROOT, template, args);
  }
}
