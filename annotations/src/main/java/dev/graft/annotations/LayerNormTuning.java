package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * LayerNorm tuning: trains the host's LayerNorm weights and biases whose names match {@link
 * #target()} (empty: all), each initialized from the host.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(LayerNormTuning.List.class)
public @interface LayerNormTuning {
  /** Regular expression that must match a whole tensor name, e.g. {@code ".*attention.*"}; empty: all. */
  String target() default "";

  /** Layer indices to train (the {@code layer.N} part of names); empty means all layers. */
  int[] layers() default {};

  /**
   * The adapter's name ({@code [a-z][a-z0-9_]*}, unique in the graft); empty: unnamed. A named
   * adapter's parameters are named {@code <name>.<module>.<suffix>}; it can be composed ({@link
   * Compose}), trained or frozen ({@link Graft#train()}), activated, saved and loaded by name.
   */
  String name() default "";

  /** Container for repeated {@link LayerNormTuning} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    LayerNormTuning[] value();
  }
}
