package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import java.util.List;
import java.util.OptionalInt;

/**
 * The output of a linear layer, bias included ({@link LinearSite#biasedOutput}): where a
 * sequential adapter goes. The value is found on the host as imported, so it stays the same
 * whatever other declarations add at the same layer (LoRA adds before the bias, this after it).
 *
 * @param node the linear layer's host node, e.g. {@code /encoder/layer.0/output/dense/MatMul}
 * @param value the layer's output value, e.g. the bias {@code Add}'s output
 * @param size the output width
 */
public record OutputSite(String node, String modulePath, OptionalInt layer, String value, long size) implements Site {
  /** The output of every linear site of the graph, in graph order. */
  public static List<OutputSite> find(Graph graph) {
    return LinearSite.find(graph).stream()
        .map(s -> new OutputSite(s.node(), s.modulePath(), s.layer(), s.biasedOutput(graph), s.out()))
        .toList();
  }
}
