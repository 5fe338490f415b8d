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
   * How the training step's backward pass goes through an int8 host's linear layers
   * ({@code MatMulInteger} over int8 weights): {@link Int8Backward#DEQUANTIZED} (the default) or
   * {@link Int8Backward#INTEGER}. Anything but the default on a graft whose gradient passes no int8
   * layer is GRAFT201.
   */
  Int8Backward int8Backward() default Int8Backward.DEQUANTIZED;

  /** The choices of {@link #int8Backward()}. */
  enum Int8Backward {
    /** The int8 weight dequantized at run time, the gradient's product in float32: the straight-through rule exactly. */
    DEQUANTIZED,
    /**
     * The gradient scaled by the weight's column scales, quantized per tensor to uint8 and
     * multiplied by the int8 weight in integer arithmetic: faster, with an error of about the
     * gradient's range / 255 per element.
     */
    INTEGER
  }
}
