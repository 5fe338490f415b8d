package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A sequence-classification head: pooling over a host output of shape
 * [batch, sequence, hidden], then a linear layer to {@link #labels()} logits, trained with
 * softmax cross-entropy (PyTorch's {@code CrossEntropyLoss(ignore_index, label_smoothing)}).
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface Classification {
  /** Number of classes, at least 2. */
  int labels();

  /** How tokens are pooled into one vector. */
  Pooling pooling() default Pooling.MEAN;

  /** The host output to pool; empty means the host's first output. */
  String output() default "";

  /** Labels equal to this contribute nothing; the loss is the mean over the other examples (0 if none). */
  long ignoreIndex() default -100;

  /** Label smoothing ε in [0, 1): the loss is (1-ε)·NLL + ε·mean over classes of −log p. */
  double labelSmoothing() default 0.0;

  /** Pooling of a [batch, sequence, hidden] output. */
  enum Pooling {
    /** Mean over the tokens whose attention mask is 1. */
    MEAN,
    /** The first token's vector ([CLS] in BERT-style hosts). */
    FIRST_TOKEN
  }
}
