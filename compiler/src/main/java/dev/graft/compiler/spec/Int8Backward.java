package dev.graft.compiler.spec;

/**
 * How the training step's backward pass multiplies by the host's frozen weights on the gradient's
 * path: the int8 linear layers of an int8 host ({@code DynamicQuantizeLinear → MatMulInteger},
 * whose input gradient is {@code dL/dx = dL/dy · W_deqᵀ} by the straight-through rule) and the
 * float32 {@code MatMul} weights of a float host ({@code dL/dx = dL/dy · Wᵀ}); see {@code
 * docs/int8-hosts.md}. The forward pass is the same either way.
 */
public enum Int8Backward {
  /**
   * The default: the products in float32, exact; an int8 weight is dequantized at run time ({@code
   * DequantizeLinear}) first.
   */
  DEQUANTIZED,
  /**
   * The products in integer arithmetic (ONNX Runtime's {@code com.microsoft:DynamicQuantizeMatMul},
   * which quantizes the gradient per tensor to uint8): with the int8 weight as it is (its column
   * scales moved onto the gradient), or with a float32 weight's transpose quantized to int8 per
   * column at load. Faster on CPUs with int8 dot products, at an error of about the gradient's
   * range / 255 per element (and, for a float weight, half its quantization step).
   */
  INTEGER
}
