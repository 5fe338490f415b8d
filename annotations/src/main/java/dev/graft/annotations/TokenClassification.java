package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A token-classification head (named-entity tagging and the like): a linear layer per token
 * over a host output of shape [batch, sequence, hidden] to {@link #labels()} logits
 * [batch, sequence, labels], trained with softmax cross-entropy against int64 labels
 * [batch, sequence]; tokens whose label is the ignore index or whose attention mask is 0 contribute
 * nothing (Hugging Face's {@code BertForTokenClassification}).
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface TokenClassification {
  /** Number of classes per token, at least 2. */
  int labels();

  /** The host output holding the hidden states; empty means the host's first output. */
  String output() default "";

  /** Token labels equal to this contribute nothing (e.g. sub-word continuations, special tokens). */
  long ignoreIndex() default -100;
}
