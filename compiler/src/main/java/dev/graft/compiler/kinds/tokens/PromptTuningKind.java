package dev.graft.compiler.kinds.tokens;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.AttentionSite;
import dev.graft.compiler.kinds.EmbeddingSite;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SiteException;

import static dev.graft.compiler.ir.Node.attr;

import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Prompt tuning (Lester et al., 2021): {@code n} learned virtual token embeddings P [n, hidden]
 * before the input's own. The host's integer inputs are extended inside the graph — {@code
 * input_ids} by n pad ids (0), {@code attention_mask} by n ones, {@code token_type_ids} by n zeros
 * — so positions, masks and every shape computed from them see {@code n + sequence} tokens; the
 * word-embedding lookup's output becomes {@code Concat(P broadcast over the batch, lookup of the
 * original ids)}; and every host output with the sequence axis is cut back to its last {@code
 * sequence} positions, so a task reads [batch, sequence, hidden] (and {@code attention_mask}, the
 * graph input, is still the caller's).
 */
public final class PromptTuningKind implements AdapterKind {
  public static final int MAX_TOKENS = 4096;
  /** PEFT's key of a prompt-learning adapter's tensor. */
  static final String PEFT_KEY = "prompt_embeddings";
  static final String INPUT_IDS = "input_ids";
  private static final Map<String, Long> EXTENDED_INPUTS =
      Map.of(INPUT_IDS, 0L, "attention_mask", 1L, "token_type_ids", 0L);

  @Override
  public String id() {
    return "prompt_tuning";
  }

  @Override
  public String displayName() {
    return "prompt tuning";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.PromptTuning";
  }

  @Override
  public String siteDescription() {
    return "embedding";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("tokens", 20, 1, MAX_TOKENS, "virtual tokens n prepended to the input"),
        AdapterOption.choice("init", "vocab", List.of("vocab", "random"),
            "vocab: copies of the embeddings of seeded random vocabulary rows; random: N(0, 1) as PEFT's RANDOM"));
  }

  @Override
  public List<EmbeddingSite> candidates(Graph graph) {
    TensorType ids = graph.inputs().get(INPUT_IDS);
    if (ids == null || !ids.hasRank() || ids.rank() != 2
        || (ids.elemType() != TensorType.INT64 && ids.elemType() != TensorType.INT32)) {
      throw new SiteException(ErrorCode.PROMPT_EMBEDDING_NOT_FOUND, "prompt tuning extends input 'input_ids' "
          + "(integer [batch, sequence]); the host's inputs are " + graph.inputs());
    }
    Dim sequence = ids.dim(1);
    if (!sequence.isKnown() && !sequence.isSymbol()) {
      throw new SiteException(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE, "input 'input_ids' " + ids
          + " has an unnamed sequence dimension, so shapes computed from it cannot be followed");
    }
    Node lookup = null;
    List<String> found = new ArrayList<>();
    for (Node n : graph.nodes()) {
      if (!n.opType().equals("Gather") || !n.domain().isEmpty() || !INPUT_IDS.equals(idsThroughCast(graph, n.input(1)))) {
        continue;
      }
      TensorProto table = graph.initializers().get(n.input(0));
      TensorType type = graph.type(n.input(0));
      if (table != null && table.getDimsCount() == 2 && type != null && type.isFloating() && n.attrInt("axis", 0) == 0) {
        lookup = n;
        break;
      }
      found.add("Gather '" + n.name() + "' of " + (table == null ? "computed value '" + n.input(0) + "'" : "initializer "
          + table.getDimsList()));
    }
    if (lookup == null) {
      throw new SiteException(ErrorCode.PROMPT_EMBEDDING_NOT_FOUND, "looked for the word-embedding lookup: a Gather "
          + "(axis 0) whose data is a 2-D float host initializer [vocab, hidden] and whose indices are input 'input_ids', "
          + "directly or through Cast; found " + (found.isEmpty() ? "no Gather reading input_ids" : String.join(", ", found)));
    }
    checkInputs(graph, sequence);
    TensorProto table = graph.initializers().get(lookup.input(0));
    AttentionSite.Scan attention = AttentionSite.scan(graph);
    List<AttentionSite> blocks = attention.sites();
    EmbeddingSite site = new EmbeddingSite(lookup.name(), LinearSite.modulePath(lookup.name()), lookup.input(0),
        table.getDims(0), table.getDims(1), blocks.isEmpty() ? 0 : blocks.get(0).heads(), blocks.size());
    verify(graph, site);
    return List.of(site);
  }

  /** {@code value}'s source when it is a graph input, directly or through one Cast; else {@code value}. */
  private static String idsThroughCast(Graph graph, String value) {
    Node p = graph.producer(value);
    return p != null && p.opType().equals("Cast") ? p.input(0) : value;
  }

  /** Every host input that has the sequence axis must be one Graft knows how to extend. */
  private static void checkInputs(Graph graph, Dim sequence) {
    for (var e : graph.inputs().entrySet()) {
      String name = e.getKey();
      TensorType t = e.getValue();
      if (name.equals("position_ids")) {
        throw new SiteException(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE, "the host takes 'position_ids' as an input, "
            + "so positions come from the caller and the virtual tokens would have none; export the host without "
            + "a position_ids input (positions computed in the graph follow the longer sequence)");
      }
      if (name.equals(INPUT_IDS)) {
        continue;
      }
      boolean hasSequence = t.hasRank() && t.dims().stream().anyMatch(d -> d.sameAs(sequence));
      if (EXTENDED_INPUTS.containsKey(name)) {
        if (!t.hasRank() || t.rank() != 2 || !t.dim(1).sameAs(sequence)
            || (t.elemType() != TensorType.INT64 && t.elemType() != TensorType.INT32)) {
          throw new SiteException(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE, "input '" + name + "' is " + t
              + "; prompt tuning extends it as integer [batch, " + sequence + "] like input_ids");
        }
      } else if (hasSequence) {
        throw new SiteException(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE, "input '" + name + "' " + t + " has the sequence "
            + "axis " + sequence + "; prompt tuning extends only " + EXTENDED_INPUTS.keySet().stream().sorted().toList());
      }
    }
  }

  /**
   * Places one virtual token on a copy of the host and checks with shape inference that the
   * host's outputs keep their shapes (every shape downstream followed the longer sequence and the
   * outputs were cut back).
   */
  private static void verify(Graph host, EmbeddingSite site) {
    Graph g = VirtualTokens.copy(host);
    Map<String, TensorType> before = new HashMap<>(g.types());
    String trial = "/prompt_tuning/trial";
    g.addInput(trial, TensorType.of(before.get(site.table()).elemType(), 1, site.hidden()));
    List<String> problems;
    try {
      apply(g, site, 1, trial);
      g.sortTopologically();
      ShapeInference.run(g);
      problems = VirtualTokens.changedOutputs(g, before);
    } catch (RuntimeException e) {
      problems = List.of("shape inference failed: " + e.getMessage());
    }
    if (!problems.isEmpty()) {
      throw new SiteException(ErrorCode.PROMPT_INPUT_NOT_EXTENDABLE,
          "with virtual tokens prepended to the inputs, " + String.join("; ", problems));
    }
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    EmbeddingSite site = (EmbeddingSite) sites.get(0);
    int n = spec.intOption("tokens");
    Placement.ParameterBuilder p = placement.parameter(site, PEFT_KEY, n, site.hidden()).exportCurrentByDefault();
    if (spec.stringOption("init").equals("vocab")) {
      p.initFromHost(Init.HOST_ROWS, site.table(), 0);
    } else {
      p.init(Init.NORMAL, 1);
    }
    String prompt = p.save(PrefixTuningKind.saveKeyTaken(placement, PEFT_KEY) ? site.modulePath() + "." + PEFT_KEY : PEFT_KEY)
        .add();
    apply(placement.graph(), site, n, prompt);
    placement.prependTokens(n);
  }

  /** Prepends the {@code n} rows of {@code prompt} [n, hidden] to the host's sequence (see the class comment). */
  private static void apply(Graph g, EmbeddingSite site, long n, String prompt) {
    String base = "/" + site.modulePath().replace('.', '/') + "/prompt_tuning";
    Node lookup = AttentionSite.node(g, site.node());
    Dim sequence = g.typeOrThrow(INPUT_IDS).dim(1);
    int mark = g.nodes().size();
    Node cast = g.producer(lookup.input(1));
    String ids = cast == null ? INPUT_IDS : g.op(base + "/Cast", "Cast", List.of(INPUT_IDS), attr("to", cast.attrInt("to", 0)));
    String real = g.op(base + "/Gather", "Gather", List.of(lookup.input(0), ids), attr("axis", 0L));
    String embedded = VirtualTokens.prependRows(g, base + "/prompt", prompt, real, n, site.hidden());
    VirtualTokens.replaceUsesBefore(g, lookup.output(0), embedded, mark);
    for (String input : List.of(INPUT_IDS, "attention_mask", "token_type_ids")) {
      if (g.inputs().containsKey(input)) {
        String extended = VirtualTokens.prependConstant(g, base + "/" + input, input, 1, n, EXTENDED_INPUTS.get(input));
        VirtualTokens.replaceUsesBefore(g, input, extended, mark);
      }
    }
    for (String output : new ArrayList<>(g.outputs())) {
      TensorType t = g.type(output);
      Node producer = g.producer(output);
      if (producer != null && t != null && t.hasRank() && t.rank() >= 2 && t.dim(1).sameAs(sequence)) {
        cutBack(g, base + "/output", producer, output, t.rank(), n);
      }
    }
  }

  /**
   * Renames {@code producer}'s output {@code output} and makes {@code output} its last {@code
   * sequence} positions: {@code Reshape(Pad(wide, −n before axis 1), [batch, sequence, rest…])}
   * (the Reshape restores the symbolic shape the negative Pad loses).
   */
  private static void cutBack(Graph g, String base, Node producer, String output, int rank, long n) {
    String wide = g.freshValue(output + "/with_virtual_tokens");
    List<String> outs = new ArrayList<>(producer.outputs());
    outs.replaceAll(o -> o.equals(output) ? wide : o);
    g.replaceNode(producer, new Node(producer.name(), producer.opType(), producer.domain(), producer.inputs(), outs,
        producer.attributes()));
    g.replaceUses(output, wide, List.of());
    g.outputs().replaceAll(o -> o.equals(wide) ? output : o);
    List<Long> pads = new ArrayList<>();
    for (int i = 0; i < 2 * rank; i++) {
      pads.add(i == 1 ? -n : 0L);
    }
    String cut = g.op(base + "/Pad", "Pad", List.of(wide, g.longs(base + "/pads", pads)));
    List<String> shape = new ArrayList<>(List.of(g.op(base + "/Shape", "Shape", List.of(INPUT_IDS))));
    if (rank > 2) {
      shape.add(g.op(base + "/Shape_rest", "Shape", List.of(wide), attr("start", 2L)));
    }
    String target = shape.size() == 1 ? shape.get(0) : g.op(base + "/shape", "Concat", shape, attr("axis", 0L));
    g.op(base + "/Reshape", "Reshape", List.of(cut, target));
    Node reshape = g.nodes().get(g.nodes().size() - 1);
    g.replaceNode(reshape, new Node(reshape.name(), reshape.opType(), reshape.domain(), reshape.inputs(), List.of(output),
        reshape.attributes()));
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "PROMPT_TUNING";
  }

  /**
   * PEFT's prompt tuning config; {@code prompt_tuning_init} is RANDOM for both inits (PEFT's TEXT
   * needs a tokenizer and a text, and how P starts does not matter to loading it).
   */
  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    if (c.has("num_virtual_tokens")) {
      return false;
    }
    EmbeddingSite site = (EmbeddingSite) sites.get(0);
    c.addProperty("num_virtual_tokens", spec.intOption("tokens"));
    c.addProperty("token_dim", site.hidden());
    c.addProperty("num_transformer_submodules", 1);
    if (site.heads() > 0) {
      c.addProperty("num_attention_heads", site.heads());
    } else {
      c.add("num_attention_heads", JsonNull.INSTANCE);
    }
    if (site.layers() > 0) {
      c.addProperty("num_layers", site.layers());
    } else {
      c.add("num_layers", JsonNull.INSTANCE);
    }
    c.addProperty("prompt_tuning_init", "RANDOM");
    c.add("prompt_tuning_init_text", JsonNull.INSTANCE);
    c.add("tokenizer_name_or_path", JsonNull.INSTANCE);
    c.add("tokenizer_kwargs", JsonNull.INSTANCE);
    return true;
  }
}
