package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Declares an adapter graph on a pretrained ONNX host model. Put it on an interface together
 * with adapter annotations ({@link Lora}) and a task ({@link Classification}); the Graft
 * annotation processor checks the declaration against the real model at compile time, writes
 * the inference and training-step ONNX graphs as resources and generates a typed class named
 * after the interface with the suffix {@code Graft}.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface Graft {
  /**
   * The host model: a class-path resource name (e.g. {@code "all-minilm-l6-v2.onnx"}) or a file
   * path. The processor option {@code -Agraft.hostDir=<dir>} adds a directory to search.
   */
  String host();

  /**
   * The named adapters the training step updates; empty (the default): every one. The other named
   * adapters are frozen (load them with {@code loadAdapter}); unnamed adapters and the head always
   * train.
   */
  String[] train() default {};

  /**
   * How the training step's backward pass multiplies by the host's frozen weights (int8 layers of
   * an int8 host, float32 {@code MatMul} weights): {@link Int8Backward#DEQUANTIZED} (the default) or
   * {@link Int8Backward#INTEGER}. The forward pass is the same either way. Anything but the default
   * on a graft whose gradient multiplies by no frozen weight is GRAFT201.
   */
  Int8Backward int8Backward() default Int8Backward.DEQUANTIZED;

  /** The choices of {@link #int8Backward()}. */
  enum Int8Backward {
    /** The products in float32, exact (an int8 weight dequantized at run time first). */
    DEQUANTIZED,
    /**
     * The gradient quantized per tensor to uint8 and multiplied by int8 weights (an int8 host's as
     * they are, a float host's quantized per column at load): faster on the CPU, with an error of
     * about the gradient's range / 255 per element.
     */
    INTEGER
  }
}
