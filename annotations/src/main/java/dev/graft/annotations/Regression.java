package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A regression head: pooling over a host output of shape [batch, sequence, hidden], then a linear
 * layer to {@link #targets()} outputs, trained with the mean squared error against float targets
 * [batch, targets].
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface Regression {
  /** Number of predicted values per example, at least 1. */
  int targets();

  /** How tokens are pooled into one vector. */
  Classification.Pooling pooling() default Classification.Pooling.MEAN;

  /** The host output to pool; empty means the host's first output. */
  String output() default "";
}
