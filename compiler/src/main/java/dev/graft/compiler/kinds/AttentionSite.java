package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/**
 * An attention block whose keys and values come from linear projections: a MatMul of two
 * activations (queries · keysᵀ, the scores) followed by elementwise ops (scaling, masks) and a
 * Softmax whose one consumer is a MatMul with the values; the keys and values each reach their
 * MatMul from a linear site's output through Reshape and Transpose only (the head split).
 *
 * @param node the scores MatMul, e.g. {@code /encoder/layer.0/attention/self/MatMul}
 * @param modulePath e.g. {@code encoder.layer.0.attention.self}
 * @param context the MatMul of the attention probabilities with the values
 * @param key the key projection
 * @param value the value projection
 * @param heads heads, from the key's head split (0 when not known)
 * @param hostLayers how many such blocks the host has (PEFT's {@code num_layers})
 */
public record AttentionSite(
    String node, String modulePath, OptionalInt layer, String context, LinearSite key, LinearSite value,
    long heads, int hostLayers) implements Site {
  private static final Set<String> MASK_OPS = Set.of("Add", "Sub", "Mul", "Div", "Where");

  /** Every attention block of the graph in graph order, and why other candidate blocks were not taken. */
  public record Scan(List<AttentionSite> sites, List<String> rejected) {}

  /** The hidden size of keys and values before the head split. */
  public long hidden() {
    return key.out();
  }

  public static Scan scan(Graph g) {
    Map<String, LinearSite> linear = new HashMap<>();
    for (LinearSite s : LinearSite.find(g)) {
      linear.put(s.biasedOutput(g), s);
    }
    Map<String, List<Node>> users = users(g);
    List<Block> blocks = new ArrayList<>();
    List<String> rejected = new ArrayList<>();
    for (Node n : g.nodes()) {
      if (!n.opType().equals("MatMul") || !n.domain().isEmpty()
          || g.initializers().containsKey(n.input(0)) || g.initializers().containsKey(n.input(1))) {
        continue;
      }
      Node softmax = softmaxAfter(n, users);
      if (softmax == null) {
        continue;
      }
      List<Node> after = users.getOrDefault(softmax.output(0), List.of());
      if (after.size() != 1 || !after.get(0).opType().equals("MatMul") || !after.get(0).input(0).equals(softmax.output(0))) {
        rejected.add(n.name() + ": its Softmax is not read by one MatMul with the values");
        continue;
      }
      Node context = after.get(0);
      String k = headSplitSource(g, n.input(1));
      String v = headSplitSource(g, context.input(1));
      LinearSite key = linear.get(k);
      LinearSite value = linear.get(v);
      if (key == null || value == null) {
        rejected.add(n.name() + ": its " + (key == null ? "keys come from " + describe(g, k) : "values come from " + describe(g, v))
            + ", not from a linear projection through Reshape/Transpose only");
      } else if (key.out() != value.out()) {
        rejected.add(n.name() + ": keys have " + key.out() + " features, values " + value.out());
      } else {
        blocks.add(new Block(n, context, key, value, heads(g, n.input(1))));
      }
    }
    List<AttentionSite> sites = new ArrayList<>();
    for (Block b : blocks) {
      sites.add(new AttentionSite(b.scores.name(), LinearSite.modulePath(b.scores.name()), LinearSite.layerOf(b.scores.name()),
          b.context.name(), b.key, b.value, b.heads, blocks.size()));
    }
    return new Scan(sites, rejected);
  }

  private record Block(Node scores, Node context, LinearSite key, LinearSite value, long heads) {}

  /** The Softmax reached from the scores MatMul through single-consumer elementwise ops, or null. */
  private static Node softmaxAfter(Node scores, Map<String, List<Node>> users) {
    String v = scores.output(0);
    while (true) {
      List<Node> u = users.getOrDefault(v, List.of());
      if (u.size() != 1) {
        return null;
      }
      Node next = u.get(0);
      if (next.opType().equals("Softmax")) {
        return next;
      }
      if (!MASK_OPS.contains(next.opType())) {
        return null;
      }
      v = next.output(0);
    }
  }

  /** The elementwise nodes between the scores MatMul and its Softmax, in order, in graph {@code g}. */
  public static List<Node> maskChain(Graph g, String scoresNode) {
    Map<String, List<Node>> users = users(g);
    Node scores = node(g, scoresNode);
    List<Node> chain = new ArrayList<>();
    String v = scores.output(0);
    while (true) {
      Node next = users.get(v).get(0);
      if (next.opType().equals("Softmax")) {
        return chain;
      }
      chain.add(next);
      v = next.output(0);
    }
  }

  /** Walks back from {@code value} through Reshape and Transpose (their data input) to where the head split starts. */
  public static String headSplitSource(Graph g, String value) {
    String v = value;
    Node p = g.producer(v);
    while (p != null && (p.opType().equals("Reshape") || p.opType().equals("Transpose"))) {
      v = p.input(0);
      p = g.producer(v);
    }
    return v;
  }

  /** Heads from the first rank-4 Reshape on the key path ([batch, sequence, heads, head_dim]); 0 when not known. */
  private static long heads(Graph g, String keys) {
    Node p = g.producer(keys);
    while (p != null && (p.opType().equals("Reshape") || p.opType().equals("Transpose"))) {
      TensorType t = g.type(p.output(0));
      if (p.opType().equals("Reshape") && t != null && t.hasRank() && t.rank() == 4 && t.dim(2).isKnown()) {
        return t.dim(2).size();
      }
      p = g.producer(p.input(0));
    }
    return 0;
  }

  private static String describe(Graph g, String value) {
    Node p = g.producer(value);
    return p == null ? "'" + value + "'" : p.opType() + " node '" + p.name() + "'";
  }

  static Map<String, List<Node>> users(Graph g) {
    Map<String, List<Node>> users = new HashMap<>();
    for (Node n : g.nodes()) {
      for (String in : n.inputs()) {
        List<Node> list = users.computeIfAbsent(in, k -> new ArrayList<>());
        if (!list.contains(n)) {
          list.add(n);
        }
      }
    }
    return users;
  }

  public static Node node(Graph g, String name) {
    return g.nodes().stream().filter(x -> x.name().equals(name)).findFirst().orElseThrow();
  }
}
