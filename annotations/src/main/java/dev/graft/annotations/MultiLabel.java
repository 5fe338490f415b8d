package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A multi-label classification head: pooling over a host output of shape [batch, sequence,
 * hidden], then a linear layer to {@link #labels()} independent logits, trained with binary
 * cross-entropy with logits against float 0/1 targets [batch, labels].
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface MultiLabel {
  /** Number of independent labels, at least 1. */
  int labels();

  /** How tokens are pooled into one vector. */
  Classification.Pooling pooling() default Classification.Pooling.MEAN;

  /** The host output to pool; empty means the host's first output. */
  String output() default "";
}
