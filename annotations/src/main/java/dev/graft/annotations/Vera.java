package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * VeRA on the linear sites whose node name matches {@link #target()} in full: {@code y = xW (+ b)
 * + λ_b ⊙ ((λ_d ⊙ (dropout(x)·A)) · B)} with frozen random projections A and B shared by all
 * sites and trained vectors {@code λ_d [rank]} (starting at {@link #dInitial()}) and {@code λ_b
 * [out]} (starting at zero).
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Vera.List.class)
public @interface Vera {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes
   * the attention query and value projections ({@code query}, {@code value}, {@code q_proj}, {@code v_proj}).
   */
  String target() default "";

  /** Rank r of the shared projections, 1..4096 (PEFT's default 256). */
  int rank() default 256;

  /** Initial value of every element of λ_d. Must be positive. */
  double dInitial() default 0.1;

  /** Dropout probability applied to the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

  /** Save the shared projections with the adapter; without them a loader must use the same seed. */
  boolean saveProjection() default true;

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /**
   * Quantized adapter (Jie et al., ICCV 2023): this adapter's weight tensors of two or more axes
   * trained at 1, 2, 4 or 8 bits (the Lloyd-Max levels of N(0, 1) after per-tensor
   * standardization, straight-through gradient); 0, the default, keeps full precision.
   */
  int quantizeBits() default 0;

  /**
   * The adapter's name ({@code [a-z][a-z0-9_]*}, unique in the graft); empty: unnamed. A named
   * adapter's parameters are named {@code <name>.<module>.<suffix>}; it can be composed ({@link
   * Compose}), trained or frozen ({@link Graft#train()}), activated, saved and loaded by name.
   */
  String name() default "";

  /** Container for repeated {@link Vera} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Vera[] value();
  }
}
