package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * LoRA on the linear sites whose node name matches {@link #target()} in full:
 * {@code y = xW (+ b) + scaling · dropout(x) · A · B}, with {@code scaling = alpha / rank}
 * ({@code alpha / sqrt(rank)} under {@link #rslora()}), A kaiming-uniform and B zero.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Lora.List.class)
public @interface Lora {
  /** Regular expression that must match a whole host node name, e.g. {@code ".*(query|value)/MatMul"}. */
  String target();

  /** Rank r of the update, 1..4096. */
  int rank() default 8;

  /** Scale numerator; the update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 16;

  /** Dropout probability applied to the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

  /** Rank-stabilized scaling {@code alpha / sqrt(rank)}. */
  boolean rslora() default false;

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /** Container for repeated {@link Lora} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Lora[] value();
  }
}
