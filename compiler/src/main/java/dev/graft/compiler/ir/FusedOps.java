package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.FunctionProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import java.util.List;
import java.util.Set;

/**
 * Graft's fused ops of the training graph (domain {@value Graph#GRAFT_DOMAIN}, version {@value
 * #VERSION}): single nodes for gradient pieces that standard ops spell as chains of elementwise
 * kernels, each a full pass over its tensor, and for the forward's LayerNormalization, whose ONNX
 * Runtime CPU kernel runs at a fraction of memory speed. Every exported model that uses one
 * carries its ONNX function (a body of ai.onnx ops, {@link #function}), so any ONNX Runtime runs
 * it: where no Graft kernel is registered (CUDA, a platform without the runtime's native library,
 * {@code ModelOptions.withFusedKernels(false)}) ONNX Runtime inlines the body; where the runtime
 * registers its CPU kernels (the {@code graftkernels} library), the node runs as one kernel.
 *
 * <p>All are float32; the gradients' {@code dy} has the shape of the forward input (output for the
 * softmax) and {@code dx} that shape:
 *
 * <ul>
 *   <li>{@code LayerNorm(x, scale, bias) → (y, mean, inv_std)}, attribute {@code epsilon}: a
 *       LayerNormalization over the last axis with its statistics outputs (shape {@code [..., 1]});
 *       its body is that one ai.onnx LayerNormalization.
 *   <li>{@code GeluGrad(dy, x) → dx}: the gradient of the erf-GELU {@code x·Φ(x)}, {@code dx = dy ·
 *       (Φ(x) + x·φ(x))}.
 *   <li>{@code SoftmaxGrad(dy, y) → dx}: the gradient of a softmax over the last axis from its
 *       output y, {@code dx = y·(dy − Σ dy·y)} (sum over the last axis).
 *   <li>{@code LayerNormGrad(dy, x, scale, mean, inv_std) → dx}: the input gradient of a
 *       LayerNormalization over the last axis from its saved statistics ({@code mean}, {@code
 *       inv_std} of shape {@code [..., 1]}, {@code scale} of shape {@code [D]}): with ĝ = dy·scale
 *       and c = x − mean, {@code dx = inv_std·(ĝ − mean(ĝ) − c·inv_std²·mean(ĝ·c))}.
 * </ul>
 */
public final class FusedOps {
  /** The version of the {@value Graph#GRAFT_DOMAIN} opset the fused ops belong to. */
  public static final int VERSION = 1;

  public static final String LAYER_NORM = "LayerNorm";
  public static final String GELU_GRAD = "GeluGrad";
  public static final String SOFTMAX_GRAD = "SoftmaxGrad";
  public static final String LAYER_NORM_GRAD = "LayerNormGrad";

  private static final Set<String> ALL = Set.of(LAYER_NORM, GELU_GRAD, SOFTMAX_GRAD, LAYER_NORM_GRAD);

  private FusedOps() {}

  /** Whether {@code n} is one of the fused ops (and not, say, the IR-only stop-gradient). */
  public static boolean isFused(Node n) {
    return n.domain().equals(Graph.GRAFT_DOMAIN) && ALL.contains(n.opType());
  }

  /** The ONNX function of fused op {@code opType}: its body in ai.onnx ops. */
  public static FunctionProto function(String opType) {
    return switch (opType) {
      case LAYER_NORM -> layerNorm();
      case GELU_GRAD -> geluGrad();
      case SOFTMAX_GRAD -> softmaxGrad();
      case LAYER_NORM_GRAD -> layerNormGrad();
      default -> throw new IllegalArgumentException("not a fused op: " + opType);
    };
  }

  /** Fused op {@code opType}'s function, {@code inputs} to {@code outputs}, its body still to add. */
  private static FunctionProto.Builder function(String opType, List<String> inputs, List<String> outputs) {
    return FunctionProto.newBuilder()
        .setName(opType)
        .setDomain(Graph.GRAFT_DOMAIN)
        .addAllInput(inputs)
        .addAllOutput(outputs)
        .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(Graph.OPSET));
  }

  /** A gradient op's function: {@code inputs} to the one output {@code dx}. */
  private static FunctionProto.Builder gradient(String opType, List<String> inputs) {
    return function(opType, inputs, List.of("dx"));
  }

  /** LayerNormalization(x, scale, bias, axis −1, epsilon from the node) with its Mean and InvStdDev outputs. */
  private static FunctionProto layerNorm() {
    return function(LAYER_NORM, List.of("x", "scale", "bias"), List.of("y", "mean", "inv_std"))
        .addAttribute("epsilon")
        .addNode(NodeProto.newBuilder()
            .setOpType("LayerNormalization")
            .addAllInput(List.of("x", "scale", "bias"))
            .addAllOutput(List.of("y", "mean", "inv_std"))
            .addAttribute(AttributeProto.newBuilder().setName("axis").setType(AttributeProto.AttributeType.INT).setI(-1))
            .addAttribute(AttributeProto.newBuilder().setName("epsilon").setType(AttributeProto.AttributeType.FLOAT)
                .setRefAttrName("epsilon")))
        .build();
  }

  /**
   * ½·dy · (1 + erf(t) + √(2/π)·x·e^(−x²/2)), t = x/√2, −x²/2 = t·(−x/√2): ten kernels; dy·½
   * first, so that ONNX Runtime folds it into the FusedMatMul that produced dy.
   */
  private static FunctionProto geluGrad() {
    FunctionProto.Builder f = gradient(GELU_GRAD, List.of("dy", "x"));
    f.addNode(constant("half", 0.5));
    f.addNode(constant("inv_sqrt2", Math.sqrt(0.5)));
    f.addNode(constant("neg_inv_sqrt2", -Math.sqrt(0.5)));
    f.addNode(constant("sqrt_2_over_pi", Math.sqrt(2 / Math.PI)));
    f.addNode(constant("one", 1));
    f.addNode(node("Mul", List.of("dy", "half"), "dy_half"));
    f.addNode(node("Mul", List.of("x", "inv_sqrt2"), "t"));
    f.addNode(node("Erf", List.of("t"), "erf"));
    f.addNode(node("Mul", List.of("x", "neg_inv_sqrt2"), "neg_t"));
    f.addNode(node("Mul", List.of("t", "neg_t"), "neg_half_x2"));
    f.addNode(node("Exp", List.of("neg_half_x2"), "gauss"));
    f.addNode(node("Mul", List.of("x", "sqrt_2_over_pi"), "scaled_x"));
    f.addNode(node("Mul", List.of("scaled_x", "gauss"), "density"));
    f.addNode(node("Sum", List.of("erf", "density", "one"), "twice_derivative"));
    f.addNode(node("Mul", List.of("dy_half", "twice_derivative"), "dx"));
    return f.build();
  }

  /** y·(dy − ReduceSum(dy·y, last axis)): four kernels. */
  private static FunctionProto softmaxGrad() {
    FunctionProto.Builder f = gradient(SOFTMAX_GRAD, List.of("dy", "y"));
    f.addNode(NodeProto.newBuilder().setOpType("Constant").addOutput("last_axis")
        .addAttribute(AttributeProto.newBuilder().setName("value_ints").setType(AttributeProto.AttributeType.INTS)
            .addInts(-1)));
    f.addNode(node("Mul", List.of("dy", "y"), "dy_y"));
    f.addNode(node("ReduceSum", List.of("dy_y", "last_axis"), "dot"));
    f.addNode(node("Sub", List.of("dy", "dot"), "centred"));
    f.addNode(node("Mul", List.of("y", "centred"), "dx"));
    return f.build();
  }

  /**
   * (ĝ − mean(ĝ) − c·(inv_std²·mean(ĝ·c)))·inv_std with ĝ = dy·scale, c = x − mean, means over the
   * last axis: the invstd factors go onto the per-row means; nine passes over x's shape.
   */
  private static FunctionProto layerNormGrad() {
    FunctionProto.Builder f = gradient(LAYER_NORM_GRAD, List.of("dy", "x", "scale", "mean", "inv_std"));
    AttributeProto lastAxis = AttributeProto.newBuilder().setName("axes").setType(AttributeProto.AttributeType.INTS)
        .addInts(-1).build();
    f.addNode(node("Sub", List.of("x", "mean"), "c"));
    f.addNode(node("Mul", List.of("dy", "scale"), "g"));
    f.addNode(node("ReduceMean", List.of("g"), "mean_g").toBuilder().addAttribute(lastAxis));
    f.addNode(node("Mul", List.of("g", "c"), "g_c"));
    f.addNode(node("ReduceMean", List.of("g_c"), "mean_g_c").toBuilder().addAttribute(lastAxis));
    f.addNode(node("Mul", List.of("inv_std", "inv_std"), "inv_var"));
    f.addNode(node("Mul", List.of("inv_var", "mean_g_c"), "k"));
    f.addNode(node("Sub", List.of("g", "mean_g"), "g_centred"));
    f.addNode(node("Mul", List.of("c", "k"), "c_k"));
    f.addNode(node("Sub", List.of("g_centred", "c_k"), "d"));
    f.addNode(node("Mul", List.of("d", "inv_std"), "dx"));
    return f.build();
  }

  private static NodeProto constant(String output, double value) {
    return NodeProto.newBuilder()
        .setOpType("Constant")
        .addOutput(output)
        .addAttribute(AttributeProto.newBuilder().setName("value_float").setType(AttributeProto.AttributeType.FLOAT)
            .setF((float) value))
        .build();
  }

  private static NodeProto node(String opType, List<String> inputs, String output) {
    return NodeProto.newBuilder().setOpType(opType).addAllInput(inputs).addOutput(output).build();
  }
}
