package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/** AdamW settings of the training step (optional; these defaults apply without it). */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface AdamW {
  double beta1() default 0.9;

  double beta2() default 0.999;

  double epsilon() default 1e-8;

  double weightDecay() default 0.01;
}
