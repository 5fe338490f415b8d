package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * The causal language-model loss on a host output of vocabulary logits [batch, sequence, vocab]:
 * position t predicts token t+1 of {@code input_ids} (or of explicit labels); positions whose next
 * token has attention mask 0 or is the ignore index are left out; the loss is the mean
 * cross-entropy over the others. Adds no head: only the adapters train.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface CausalLm {
  /** The host output holding the logits; empty means the host's first output. */
  String output() default "";

  /** Next-token labels equal to this contribute nothing. */
  long ignoreIndex() default -100;

  /** Label smoothing ε in [0, 1). */
  double labelSmoothing() default 0.0;
}
