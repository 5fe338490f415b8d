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
}
