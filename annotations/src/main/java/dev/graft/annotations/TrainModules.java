package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Full tuning of the linear layers whose node names match {@link #target()} (required), PEFT's
 * {@code modules_to_save}: their weight and bias are trained, initialized from the host.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(TrainModules.List.class)
public @interface TrainModules {
  /** Regular expression that must match a whole host node name, e.g. {@code ".*output/dense/MatMul"}; required. */
  String target();

  /** Layer indices to train (the {@code layer.N} part of names); empty means all layers. */
  int[] layers() default {};

  /**
   * The adapter's name ({@code [a-z][a-z0-9_]*}, unique in the graft); empty: unnamed. A named
   * adapter's parameters are named {@code <name>.<module>.<suffix>}; it can be composed ({@link
   * Compose}), trained or frozen ({@link Graft#train()}), activated, saved and loaded by name.
   */
  String name() default "";

  /** Container for repeated {@link TrainModules} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    TrainModules[] value();
  }
}
