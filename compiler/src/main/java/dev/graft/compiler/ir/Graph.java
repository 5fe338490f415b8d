package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * The compiler's one IR: a topologically ordered list of {@link Node}s over named values, with
 * initializers, typed graph inputs and outputs, and the value types shape inference found.
 * Passes mutate a graph in place; nodes themselves are immutable.
 */
public final class Graph {
  /** The ai.onnx opset every graph is normalized to on import. */
  public static final int OPSET = 17;

  public static final String MS_DOMAIN = "com.microsoft";

  /**
   * The domain of Graft's own ops, which exist only in the IR: {@code dev.graft:StopGradient}
   * (the identity whose output carries no gradient) is written to ONNX as an ai.onnx {@code
   * Identity} ({@link OnnxExport}).
   */
  public static final String GRAFT_DOMAIN = "dev.graft";

  /** The op type of Graft's stop-gradient op (domain {@link #GRAFT_DOMAIN}). */
  public static final String STOP_GRADIENT = "StopGradient";

  private final List<Node> nodes = new ArrayList<>();
  private final Map<String, TensorProto> initializers = new LinkedHashMap<>();
  private final Set<String> external = new LinkedHashSet<>();
  private final Map<String, TensorType> inputs = new LinkedHashMap<>();
  private final List<String> outputs = new ArrayList<>();
  private final Map<String, TensorType> types = new HashMap<>();
  private final Map<String, List<Long>> folded = new HashMap<>();
  private final Set<String> nodeNames = new HashSet<>();
  private final Set<String> valueNames = new HashSet<>();
  private int sourceOpset = OPSET;

  /**
   * An independent copy, as a fresh import of the same model would be: the same nodes,
   * initializers and types (all immutable) in collections of its own, so passes on the copy leave
   * this graph as it is.
   */
  public Graph copy() {
    Graph g = new Graph();
    g.nodes.addAll(nodes);
    g.initializers.putAll(initializers);
    g.external.addAll(external);
    g.inputs.putAll(inputs);
    g.outputs.addAll(outputs);
    g.types.putAll(types);
    folded.forEach((value, longs) -> g.folded.put(value, new ArrayList<>(longs)));
    g.nodeNames.addAll(nodeNames);
    g.valueNames.addAll(valueNames);
    g.sourceOpset = sourceOpset;
    return g;
  }

  /** The ai.onnx opset the graph was imported from (its nodes are normalized to {@link #OPSET}). */
  public int sourceOpset() {
    return sourceOpset;
  }

  public void setSourceOpset(int opset) {
    this.sourceOpset = opset;
  }

  public List<Node> nodes() {
    return nodes;
  }

  public Map<String, TensorProto> initializers() {
    return initializers;
  }

  /** Initializers to emit as external data (frozen host weights fed by the runtime). */
  public Set<String> externalInitializers() {
    return external;
  }

  public Map<String, TensorType> inputs() {
    return inputs;
  }

  public List<String> outputs() {
    return outputs;
  }

  /** Types known for values: inputs, initializers and what shape inference found. */
  /**
   * The values shape inference computed for small integer tensors that are not constants in the
   * graph (e.g. a head size read by {@code Shape → Gather → Div}), by value name: what gradient
   * rules may treat as constant where every dimension involved is static. Refilled by each run of
   * shape inference; the graph's nodes are left as they are.
   */
  public Map<String, List<Long>> foldedValues() {
    return folded;
  }

  public Map<String, TensorType> types() {
    return types;
  }

  public @Nullable TensorType type(String value) {
    return types.get(value);
  }

  public TensorType typeOrThrow(String value) {
    TensorType t = types.get(value);
    if (t == null) {
      throw new IllegalStateException("no type known for value '" + value + "'");
    }
    return t;
  }

  /** Registers names already taken (on import). */
  public void reserve(String value) {
    valueNames.add(value);
  }

  /** A value or node name not used yet, derived from {@code base}. */
  public String freshValue(String base) {
    return fresh(base, valueNames);
  }

  private static String fresh(String base, Set<String> used) {
    String name = base;
    for (int i = 1; used.contains(name); i++) {
      name = base + "_" + i;
    }
    used.add(name);
    return name;
  }

  public void addInput(String name, TensorType type) {
    reserve(name);
    inputs.put(name, type);
    types.put(name, type);
  }

  public void addInitializer(TensorProto tensor, boolean isExternal) {
    reserve(tensor.getName());
    initializers.put(tensor.getName(), tensor);
    types.put(tensor.getName(), Tensors.typeOf(tensor));
    if (isExternal) {
      external.add(tensor.getName());
    }
  }

  /** Adds a constant initializer with a fresh name based on {@code base}; returns its name. */
  public String constant(String base, TensorProto tensor) {
    String name = freshValue(base);
    addInitializer(tensor.toBuilder().setName(name).build(), false);
    return name;
  }

  public String scalar(String base, int elemType, double value) {
    return constant(base, Tensors.scalar(base, elemType, value));
  }

  public String longs(String base, List<Long> values) {
    return constant(base, Tensors.longs(base, values));
  }

  /** Appends an imported node as is (names already unique). */
  public void addImported(Node node) {
    nodeNames.add(node.name());
    valueNames.addAll(node.outputs());
    nodes.add(node);
  }

  /**
   * Appends a node named after {@code name} (made unique) with {@code outputCount} fresh outputs
   * named {@code <node>_output_<i>}; returns the output names.
   */
  public List<String> add(
      String name,
      String opType,
      String domain,
      List<String> in,
      int outputCount,
      SortedMap<String, AttributeProto> attributes) {
    String nodeName = fresh(name, nodeNames);
    List<String> out = new ArrayList<>();
    for (int i = 0; i < outputCount; i++) {
      out.add(freshValue(nodeName + "_output_" + i));
    }
    nodes.add(new Node(nodeName, opType, domain, in, out, attributes));
    return out;
  }

  /**
   * Appends {@code dev.graft:StopGradient(in)}: the identity on values, through which autodiff
   * passes no gradient (a straight-through estimator is {@code w + stopGradient(q − w)}).
   */
  public String stopGradient(String name, String in) {
    return add(name, STOP_GRADIENT, GRAFT_DOMAIN, List.of(in), 1, Node.attrs()).get(0);
  }

  /** Appends a single-output ai.onnx node; returns its output. */
  public String op(String name, String opType, List<String> in, AttributeProto... attributes) {
    return add(name, opType, "", in, 1, Node.attrs(attributes)).get(0);
  }

  /** Appends a single-output ai.onnx node whose output gets exactly the name {@code output}. */
  public String opTo(String output, String name, String opType, List<String> in, AttributeProto... attributes) {
    if (!valueNames.add(output) && !inputs.containsKey(output)) {
      // Taken by an imported value: a caller bug, since outputs named here are Graft's own.
      throw new IllegalArgumentException("value name already used: " + output);
    }
    nodes.add(new Node(fresh(name, nodeNames), opType, "", in, List.of(output), Node.attrs(attributes)));
    return output;
  }

  /** The nodes reading {@code value} as an input, in graph order (a node reading it twice once). */
  public List<Node> readers(String value) {
    return nodes.stream().filter(n -> n.inputs().contains(value)).toList();
  }

  public @Nullable Node producer(String value) {
    for (Node n : nodes) {
      if (n.outputs().contains(value)) {
        return n;
      }
    }
    return null;
  }

  public Map<String, Node> producers() {
    Map<String, Node> m = new HashMap<>();
    for (Node n : nodes) {
      for (String o : n.outputs()) {
        m.put(o, n);
      }
    }
    return m;
  }

  /** Replaces every use of {@code from} as a node input or graph output by {@code to}, except in {@code except}. */
  public void replaceUses(String from, String to, Collection<Node> except) {
    Set<Node> skip = new HashSet<>(except);
    for (int i = 0; i < nodes.size(); i++) {
      Node n = nodes.get(i);
      if (skip.contains(n) || !n.inputs().contains(from)) {
        continue;
      }
      List<String> in = new ArrayList<>(n.inputs());
      in.replaceAll(v -> v.equals(from) ? to : v);
      nodes.set(i, n.withInputs(in));
    }
    outputs.replaceAll(v -> v.equals(from) ? to : v);
  }

  public void replaceNode(Node old, Node replacement) {
    int i = nodes.indexOf(old);
    if (i < 0) {
      throw new IllegalArgumentException("node not in graph: " + old.name());
    }
    nodes.set(i, replacement);
  }

  /** Reorders nodes topologically, keeping the existing order wherever it is already valid. */
  public void sortTopologically() {
    Map<String, Node> producers = producers();
    Map<Node, Integer> pending = new HashMap<>();
    Map<Node, List<Node>> users = new HashMap<>();
    for (Node n : nodes) {
      Set<Node> deps = new LinkedHashSet<>();
      for (String in : n.inputs()) {
        Node p = producers.get(in);
        if (p != null && p != n) {
          deps.add(p);
        }
      }
      pending.put(n, deps.size());
      for (Node d : deps) {
        users.computeIfAbsent(d, k -> new ArrayList<>()).add(n);
      }
    }
    Map<Node, Integer> position = new HashMap<>();
    for (int i = 0; i < nodes.size(); i++) {
      position.put(nodes.get(i), i);
    }
    TreeMap<Integer, Node> ready = new TreeMap<>();
    for (Node n : nodes) {
      if (pending.get(n) == 0) {
        ready.put(position.get(n), n);
      }
    }
    List<Node> sorted = new ArrayList<>();
    while (!ready.isEmpty()) {
      Node n = ready.pollFirstEntry().getValue();
      sorted.add(n);
      for (Node u : users.getOrDefault(n, List.of())) {
        if (pending.merge(u, -1, Integer::sum) == 0) {
          ready.put(position.get(u), u);
        }
      }
    }
    if (sorted.size() != nodes.size()) {
      throw new IllegalStateException("graph has a cycle");
    }
    nodes.clear();
    nodes.addAll(sorted);
  }

  /** Removes nodes, initializers and inputs that no graph output depends on (inputs are kept). */
  public void removeUnused() {
    Set<String> live = new HashSet<>(outputs);
    Deque<Node> keep = new ArrayDeque<>();
    for (int i = nodes.size() - 1; i >= 0; i--) {
      Node n = nodes.get(i);
      if (n.outputs().stream().anyMatch(live::contains)) {
        keep.addFirst(n);
        live.addAll(n.inputs());
      }
    }
    nodes.clear();
    nodes.addAll(keep);
    initializers.keySet().removeIf(k -> !live.contains(k));
    external.removeIf(k -> !live.contains(k));
  }
}
