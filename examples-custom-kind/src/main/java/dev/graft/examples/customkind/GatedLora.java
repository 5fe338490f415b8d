package dev.graft.examples.customkind;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Gated LoRA on the linear sites whose node name matches {@link #target()} in full: {@code y = xW
 * + b + (alpha / rank) · (dropout(x)·A·B) ⊙ sigmoid(gate)}, a LoRA update whose every output unit
 * has a learned gate in (0, 1). Declared on a {@code @Graft} interface like a built-in adapter
 * annotation; the Graft processor finds its kind, {@link GatedLoraKind}, on the processor path.
 *
 * <p>The members are what the processor reads: {@code target} and {@code layers} as for every
 * kind, and one member per option of the kind, of the same name and type.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
public @interface GatedLora {
  /** Regular expression over host node names; empty: the query and value projections, as LoRA's default. */
  String target() default "";

  /** Rank r of the update, 1..4096. */
  int rank() default 8;

  /** Scale numerator; the update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 16;

  /** Dropout probability on the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

  /** Layer indices to adapt; empty means all layers. */
  int[] layers() default {};
}
