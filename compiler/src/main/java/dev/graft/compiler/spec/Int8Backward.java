package dev.graft.compiler.spec;

/**
 * How the training step's backward pass goes through an int8 linear layer of the host ({@code
 * DynamicQuantizeLinear → MatMulInteger}, see {@code docs/int8-hosts.md}), whose input gradient is
 * {@code dL/dx = dL/dy · W_deqᵀ} by the straight-through rule. Float hosts have no such layer.
 */
public enum Int8Backward {
  /**
   * The default: the int8 weight is dequantized at run time ({@code DequantizeLinear}) and the
   * float gradient multiplied by its transpose in float32, the straight-through rule exactly.
   */
  DEQUANTIZED,
  /**
   * The gradient is scaled by the weight's column scales, quantized per tensor to uint8 at run
   * time (ONNX Runtime's {@code com.microsoft:DynamicQuantizeMatMul}) and multiplied by the int8
   * weight's transpose in integer arithmetic: the forward's int8 speed for the backward's
   * products too, at the cost of an error of about the gradient's range / 255 per element.
   */
  INTEGER
}
