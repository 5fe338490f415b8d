package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * LoKr on the linear sites whose node name matches {@link #target()} in full: {@code y = xW (+ b)
 * + (alpha / rank) · dropout(x) · (W1 ⊗ W2)}, a Kronecker product whose factors split the
 * site's dimensions by {@link #factor()}; W1 starts at zero.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(LoKr.List.class)
public @interface LoKr {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes
   * the attention query and value projections ({@code query}, {@code value}, {@code q_proj}, {@code v_proj}).
   */
  String target() default "";

  /** Rank of the low-rank decomposition of W2 (used when it is below half W2's larger side), 1..4096. */
  int rank() default 8;

  /** Scale numerator; the update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 8;

  /** Dropout probability applied to the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

  /**
   * Kronecker split (PEFT's {@code decompose_factor}): -1 splits each dimension near its square
   * root; a positive factor must divide every adapted dimension and is the first factor's side.
   */
  int factor() default -1;

  /** Also decompose W1 at the rank when the rank is below half its larger side (PEFT's {@code decompose_both}). */
  boolean decomposeBoth() default false;

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

  /** Container for repeated {@link LoKr} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    LoKr[] value();
  }
}
