package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * LT-SFT sparse fine-tuning (Ansell et al., ACL 2022) of the linear weights whose node names
 * match {@link #target()} in full: each weight W is read as {@code W + Δ}, Δ trained where the
 * runtime's update mask is true. {@code SparseFineTuning.train} in the runtime trains Δ densely
 * (phase 1), keeps the K entries of largest |Δ|, resets Δ to zero and trains only those K (phase
 * 2); the result is saved as a sparse difference that composes with others by addition.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(SparseFineTuning.List.class)
public @interface SparseFineTuning {
  /** Regular expression that must match a whole host node name; empty: every linear layer. */
  String target() default "";

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /**
   * λ of the L1 pull toward the host weights: {@code λ · Σ|Δ| / (the host's parameter count)}
   * is added to the training loss in both phases (composable-sft's {@code sparse_l1_reg}); 0: none.
   */
  double l1Reg() default 0;

  /** The adapter's name ({@code [a-z][a-z0-9_]*}, unique in the graft); empty: unnamed. */
  String name() default "";

  /** Container for repeated {@link SparseFineTuning} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    SparseFineTuning[] value();
  }
}
