package dev.graft.compiler.kinds.tokens;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.AttentionSite;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SiteException;

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
import dev.graft.spec.manifest.Parameter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Prefix tuning (Li and Liang, 2021): each chosen attention block attends to {@code n} learned
 * key and value rows before the sequence's own. With {@code E} [n, S·2·hidden] (S chosen blocks),
 * block i's keys become {@code Concat(E[:, 2i·h:(2i+1)·h], K)} and its values {@code Concat(E[:,
 * (2i+1)·h:(2i+2)·h], V)} on the sequence axis, before the head split — PEFT's layout of {@code
 * past_key_values}, heads contiguous within each row. Queries keep their length; every mask
 * operand between the scores and the Softmax that spans the key axis gets {@code n} neutral
 * entries in front (0 for an additive mask, 1 for a multiplicative one), so every query attends
 * to every prefix row. With {@code projection}, {@code E = tanh(P·W1 + b1)·W2 + b2} from {@code P}
 * [n, hidden] (PEFT's {@code prefix_projection}).
 */
public final class PrefixTuningKind implements AdapterKind {
  public static final int MAX_TOKENS = 4096;

  @Override
  public String id() {
    return "prefix_tuning";
  }

  @Override
  public String displayName() {
    return "prefix tuning";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.PrefixTuning";
  }

  @Override
  public String siteDescription() {
    return "attention";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("tokens", 20, 1, MAX_TOKENS, "virtual positions n prepended to every chosen layer's keys and values"),
        AdapterOption.bool("projection", false, "reparameterize the prefix through a two-layer tanh MLP (PEFT's prefix_projection)"),
        AdapterOption.integer("projectionHidden", 512, 1, 1 << 16, "hidden width of the projection MLP (PEFT's encoder_hidden_size)"));
  }

  @Override
  public List<AttentionSite> candidates(Graph graph) {
    AttentionSite.Scan scan = AttentionSite.scan(graph);
    if (scan.sites().isEmpty()) {
      throw new SiteException(ErrorCode.PREFIX_ATTENTION_NOT_FOUND,
          "looked for attention blocks (a MatMul of queries and keys, elementwise scaling and masks, a Softmax read by "
              + "one MatMul with the values) whose keys and values come from linear projections through "
              + "Reshape/Transpose only; found " + (scan.rejected().isEmpty() ? "no such Softmax" : String.join("; ", scan.rejected())));
    }
    verify(graph, scan.sites());
    return scan.sites();
  }

  /**
   * Places a one-row prefix on a copy of the host and checks with shape inference that every
   * block's scores get one more key (and the same queries) and that the host's outputs keep
   * their shapes.
   */
  private static void verify(Graph host, List<AttentionSite> sites) {
    Graph g = VirtualTokens.copy(host);
    Map<String, TensorType> before = new HashMap<>(g.types());
    long h = sites.get(0).hidden();
    Map<String, String> masks = new HashMap<>();
    for (AttentionSite s : sites) {
      String rows = "/prefix_tuning/trial/" + s.modulePath();
      g.addInput(rows, TensorType.of(before.get(s.key().weight()).elemType(), 1, s.hidden()));
      apply(g, s, 1, rows, rows, masks);
    }
    g.sortTopologically();
    ShapeInference.run(g);
    List<String> problems = new ArrayList<>();
    for (AttentionSite s : sites) {
      String scores = AttentionSite.node(g, s.node()).output(0);
      TensorType was = before.get(scores);
      TensorType now = g.type(scores);
      Dim keys = VirtualTokens.extended(was.dim(was.rank() - 1), 1);
      if (now == null || !now.hasRank() || now.rank() != was.rank() || !now.dim(now.rank() - 1).sameAs(keys)
          || !now.dim(now.rank() - 2).sameAs(was.dim(was.rank() - 2))) {
        problems.add(s.node() + " would give scores " + now + " instead of " + was + " with " + keys + " keys"
            + " (does the head split take its shape from the queries?)");
      }
      String context = AttentionSite.node(g, s.context()).output(0);
      if (g.type(context) == null || !VirtualTokens.sameType(before.get(context), g.type(context))) {
        problems.add(s.context() + " would give " + g.type(context) + " instead of " + before.get(context));
      }
    }
    problems.addAll(VirtualTokens.changedOutputs(g, before));
    if (!problems.isEmpty()) {
      throw new SiteException(ErrorCode.PREFIX_SHAPES_DO_NOT_FOLLOW,
          "with prefix rows prepended to keys and values, " + String.join("; ", problems));
    }
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    int n = spec.intOption("tokens");
    long h = ((AttentionSite) sites.get(0)).hidden();
    long width = sites.size() * 2L * h;
    String prefix = freeName(placement, "prefix_tuning");
    Graph g = placement.graph();
    String table;
    if (spec.boolOption("projection")) {
      int p = spec.intOption("projectionHidden");
      String emb = placement.sharedParameter(prefix + ".embedding.weight", n, h).init(Init.NORMAL, 1).exportCurrentByDefault()
          .save(prefix + ".embedding.weight").add();
      String w1 = placement.sharedParameter(prefix + ".transform.0.weight", h, p).init(Init.KAIMING_UNIFORM, h).exportCurrentByDefault()
          .saveTransposed(prefix + ".transform.0.weight").add();
      String b1 = placement.sharedParameter(prefix + ".transform.0.bias", p).init(Init.UNIFORM, 1 / Math.sqrt(h))
          .exportCurrentByDefault().noDecay().save(prefix + ".transform.0.bias").add();
      String w2 = placement.sharedParameter(prefix + ".transform.2.weight", p, width).init(Init.KAIMING_UNIFORM, p).exportCurrentByDefault()
          .saveTransposed(prefix + ".transform.2.weight").add();
      String b2 = placement.sharedParameter(prefix + ".transform.2.bias", width).init(Init.UNIFORM, 1 / Math.sqrt(p))
          .exportCurrentByDefault().noDecay().save(prefix + ".transform.2.bias").add();
      String base = "/" + prefix + "/transform";
      String hidden = g.op(base + "/Tanh", "Tanh", List.of(
          g.op(base + "/Add", "Add", List.of(g.op(base + "/MatMul", "MatMul", List.of(emb, w1)), b1))));
      table = g.op(base + "/Add_1", "Add", List.of(g.op(base + "/MatMul_1", "MatMul", List.of(hidden, w2)), b2));
    } else {
      String name = prefix + ".prompt_embeddings";
      table = placement.sharedParameter(name, n, width).init(Init.NORMAL, 1).exportCurrentByDefault()
          .save(saveKeyTaken(placement, PromptTuningKind.PEFT_KEY) ? name : PromptTuningKind.PEFT_KEY).add();
    }
    Map<String, String> masks = new HashMap<>();
    for (int i = 0; i < sites.size(); i++) {
      AttentionSite s = (AttentionSite) sites.get(i);
      String base = "/" + s.modulePath().replace('.', '/') + "/prefix_tuning";
      String keys = rows(g, base + "/key_rows", table, 2L * i * h, h);
      String values = rows(g, base + "/value_rows", table, (2L * i + 1) * h, h);
      apply(g, s, n, keys, values, masks);
    }
  }

  /** Columns {@code [from, from + h)} of {@code table} [n, width]. */
  private static String rows(Graph g, String base, String table, long from, long h) {
    return g.op(base, "Slice", List.of(table, g.longs(base + "/starts", List.of(from)),
        g.longs(base + "/ends", List.of(from + h)), g.longs(base + "/axes", List.of(1L))));
  }

  /**
   * Prepends {@code keyRows} and {@code valueRows} [n, hidden] to the block's keys and values
   * where its head split starts, and {@code n} neutral entries to every mask operand spanning
   * the key axis ({@code masks}: the extended operands made so far, shared across blocks).
   */
  private static void apply(Graph g, AttentionSite s, long n, String keyRows, String valueRows, Map<String, String> masks) {
    String base = "/" + s.modulePath().replace('.', '/') + "/prefix_tuning";
    Node scores = AttentionSite.node(g, s.node());
    Node context = AttentionSite.node(g, s.context());
    TensorType scoresType = g.typeOrThrow(scores.output(0));
    Dim keyLength = scoresType.dim(scoresType.rank() - 1);
    String k = AttentionSite.headSplitSource(g, scores.input(1));
    String v = AttentionSite.headSplitSource(g, context.input(1));
    int mark = g.nodes().size();
    String k2 = VirtualTokens.prependRows(g, base + "/key", keyRows, k, n, s.hidden());
    String v2 = VirtualTokens.prependRows(g, base + "/value", valueRows, v, n, s.hidden());
    VirtualTokens.replaceUsesBefore(g, k, k2, mark);
    VirtualTokens.replaceUsesBefore(g, v, v2, mark);
    String chainValue = scores.output(0);
    for (Node op : AttentionSite.maskChain(g, s.node())) {
      Node current = op;
      for (int j = 0; j < op.inputs().size(); j++) {
        String x = op.input(j);
        if (x.equals(chainValue)) {
          continue;
        }
        TensorType t = g.type(x);
        if (t == null || !t.hasRank()) {
          throw new SiteException(ErrorCode.PREFIX_SHAPES_DO_NOT_FOLLOW, "the shape of '" + x + "', which " + op.opType()
              + " node '" + op.name() + "' applies to the scores of " + s.node() + ", is not known");
        }
        if (t.rank() == 0 || t.dim(t.rank() - 1).is(1)) {
          continue;
        }
        if (!t.dim(t.rank() - 1).sameAs(keyLength)) {
          throw new SiteException(ErrorCode.PREFIX_SHAPES_DO_NOT_FOLLOW, op.opType() + " node '" + op.name()
              + "' applies '" + x + "' " + t + " to the scores of " + s.node() + ", whose key axis is " + keyLength);
        }
        double neutral = switch (op.opType()) {
          case "Add", "Sub" -> 0;
          case "Mul" -> 1;
          case "Div" -> j == 1 ? 1 : Double.NaN;
          default -> Double.NaN;
        };
        if (Double.isNaN(neutral) || !t.isFloating()) {
          throw new SiteException(ErrorCode.PREFIX_SHAPES_DO_NOT_FOLLOW, op.opType() + " node '" + op.name()
              + "' applies '" + x + "' " + t + " over the key axis of " + s.node()
              + "; Graft extends additive and multiplicative float masks only");
        }
        String key = x + "@" + neutral;
        String extended = masks.get(key);
        if (extended == null) {
          extended = VirtualTokens.prependConstant(g, "/prefix_tuning/mask", x, -1, n, neutral);
          masks.put(key, extended);
        }
        Node replaced = current.withInput(j, extended);
        g.replaceNode(current, replaced);
        current = replaced;
      }
      chainValue = op.output(0);
    }
  }

  /** {@code base}, or {@code base_2}, {@code base_3} … when parameters of that prefix exist already. */
  private static String freeName(Placement placement, String base) {
    String name = base;
    for (int i = 2; taken(placement, name); i++) {
      name = base + "_" + i;
    }
    return name;
  }

  private static boolean taken(Placement placement, String prefix) {
    return placement.parameters().stream().anyMatch(p -> p.getName().startsWith(prefix + "."));
  }

  static boolean saveKeyTaken(Placement placement, String key) {
    return placement.parameters().stream().map(Parameter::getSaveKey).anyMatch(key::equals);
  }

  @Override
  public String peftType(AdapterSpec spec) {
    return "PREFIX_TUNING";
  }

  /**
   * PEFT's prefix tuning config where it can hold the declaration: every attention block of the
   * host chosen, no projection (PEFT saves a projected prefix as its output, which Graft does not
   * compute when saving), and no other prompt-learning declaration.
   */
  @Override
  public boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject c) {
    AttentionSite first = (AttentionSite) sites.get(0);
    if (c.has("num_virtual_tokens") || spec.boolOption("projection") || sites.size() != first.hostLayers()) {
      return false;
    }
    c.addProperty("num_virtual_tokens", spec.intOption("tokens"));
    c.addProperty("token_dim", first.hidden());
    c.addProperty("num_transformer_submodules", 1);
    if (first.heads() > 0) {
      c.addProperty("num_attention_heads", first.heads());
    } else {
      c.add("num_attention_heads", JsonNull.INSTANCE);
    }
    c.addProperty("num_layers", first.hostLayers());
    c.add("encoder_hidden_size", JsonNull.INSTANCE);
    c.addProperty("prefix_projection", false);
    return true;
  }
}
