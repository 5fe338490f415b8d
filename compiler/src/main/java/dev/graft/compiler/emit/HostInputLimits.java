package dev.graft.compiler.emit;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * The value limits of the host's integer inputs that the runtime checks before ONNX Runtime runs
 * (manifest {@code HostInput.index_limit} and {@code max_sequence}), read from a compiled graph:
 *
 * <ul>
 *   <li>an input whose values (as they are, or through Cast, Reshape, Unsqueeze, Squeeze, Flatten
 *       or Identity) are the indices of a Gather on axis 0 of a host table takes values in {@code
 *       [0, rows)}: the word embeddings' vocabulary for {@code input_ids}, the type embeddings for
 *       {@code token_type_ids} (the smallest table where there are several);
 *   <li>a Gather on axis 0 of a 2-D host table whose indices are computed from the shapes of host
 *       inputs only (positions from {@code Shape → Range}, or a slice of a {@code position_ids}
 *       buffer) is a position table: no sequence may be longer than its rows.
 * </ul>
 */
final class HostInputLimits {
  /** Ops that pass an integer input's values through unchanged. */
  private static final Set<String> VALUE_PRESERVING = Set.of("Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten",
      "Identity");

  /** One input's limits; 0 where none was found. */
  record Limit(long indexLimit, long maxSequence) {}

  private HostInputLimits() {}

  /** The limits of each host input of {@code graph} that has one. */
  static Map<String, Limit> find(Graph graph, Set<String> hostInputs) {
    Map<String, Node> producers = graph.producers();
    Map<String, List<Node>> users = new HashMap<>();
    for (Node n : graph.nodes()) {
      for (String in : n.inputs()) {
        users.computeIfAbsent(in, k -> new java.util.ArrayList<>()).add(n);
      }
    }
    long maxSequence = 0;
    for (Node n : graph.nodes()) {
      long rows = tableRows(graph, n, 2);
      if (rows > 0 && fromShapesOnly(n.input(1), producers, hostInputs)) {
        maxSequence = maxSequence == 0 ? rows : Math.min(maxSequence, rows);
      }
    }
    Map<String, Limit> out = new HashMap<>();
    for (String input : hostInputs) {
      long indexLimit = 0;
      Deque<String> values = new ArrayDeque<>(List.of(input));
      Set<String> seen = new HashSet<>();
      while (!values.isEmpty()) {
        String v = values.pop();
        if (!seen.add(v)) {
          continue;
        }
        for (Node u : users.getOrDefault(v, List.of())) {
          long rows = tableRows(graph, u, 1);
          if (rows > 0 && u.input(1).equals(v)) {
            indexLimit = indexLimit == 0 ? rows : Math.min(indexLimit, rows);
          } else if (VALUE_PRESERVING.contains(u.opType()) && u.domain().isEmpty() && u.input(0).equals(v)) {
            values.push(u.output(0));
          }
        }
      }
      TensorType type = graph.inputs().get(input);
      long sequence = type != null && type.hasRank() && type.rank() >= 2 ? maxSequence : 0;
      if (indexLimit > 0 || sequence > 0) {
        out.put(input, new Limit(indexLimit, sequence));
      }
    }
    return out;
  }

  /** The rows of the host table {@code n} gathers from (axis 0, table rank >= {@code minRank}), or 0. */
  private static long tableRows(Graph graph, Node n, int minRank) {
    if (!n.opType().equals("Gather") || !n.domain().isEmpty() || n.inputs().size() != 2 || n.attrInt("axis", 0) != 0) {
      return 0;
    }
    @Nullable TensorProto table = graph.initializers().get(n.input(0));
    return table == null || table.getDimsCount() < minRank ? 0 : table.getDims(0);
  }

  /** Whether {@code value} is computed from constants and the shapes of host inputs, and from at least one such shape. */
  private static boolean fromShapesOnly(String value, Map<String, Node> producers, Set<String> hostInputs) {
    Deque<String> pending = new ArrayDeque<>(List.of(value));
    Set<String> seen = new HashSet<>();
    boolean shape = false;
    while (!pending.isEmpty()) {
      String v = pending.pop();
      if (v.isEmpty() || !seen.add(v)) {
        continue;
      }
      if (hostInputs.contains(v)) {
        return false;
      }
      Node p = producers.get(v);
      if (p == null) {
        continue;
      }
      if (p.opType().equals("Shape") || p.opType().equals("Size")) {
        shape = true;
        continue;
      }
      pending.addAll(p.inputs());
    }
    return shape;
  }
}
