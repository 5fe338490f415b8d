package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Node;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * The vector-Jacobian product of one op, emitted as standard ONNX nodes. Given the gradients
 * of the node's outputs (null where an output gets none), it returns one gradient per input
 * (null for inputs that need none: see {@link Grad#needs(int)}).
 */
@FunctionalInterface
public interface GradientRule {
  List<@Nullable String> backward(Node node, List<@Nullable String> outputGrads, Grad grad);
}
