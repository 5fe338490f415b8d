package dev.graft.compiler.kinds;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A linear layer as a module whose own tensors are trained (PEFT's {@code modules_to_save}): its
 * weight initializer and the bias added right after it, found on the host as imported.
 *
 * @param node the linear host node, e.g. {@code /encoder/layer.0/attention/self/query/MatMul}
 * @param weight the weight initializer (the MiniLM export names it {@code onnx::MatMul_…})
 * @param outFirst whether the weight is stored {@code [out, in]} (a Gemm with {@code transB=1}, as torch saves it, or
 *     read through a Transpose: {@link LinearSite#outFirst})
 * @param int8 whether the layer is an int8 one ({@link LinearSite#int8}): its weight cannot be trained
 */
public record ModuleSite(String node, String modulePath, OptionalInt layer, String weight, Optional<String> bias,
    boolean outFirst, boolean int8) implements Site {
  /** Every linear site of the graph as a module, in graph order. */
  public static List<ModuleSite> find(Graph graph) {
    return LinearSite.find(graph).stream()
        .map(s -> new ModuleSite(s.node(), s.modulePath(), s.layer(), s.weight(), s.bias(graph), s.outFirst(),
            s.int8() != null))
        .toList();
  }
}
