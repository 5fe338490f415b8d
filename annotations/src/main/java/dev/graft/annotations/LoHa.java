package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * LoHa on the linear sites whose node name matches {@link #target()} in full: {@code y = xW (+ b)
 * + (alpha / rank) · dropout(x) · ((W1b·W1a) ⊙ (W2b·W2a))}, a Hadamard product of two rank-r
 * products; W2b starts at zero.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(LoHa.List.class)
public @interface LoHa {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes
   * the attention query and value projections ({@code query}, {@code value}, {@code q_proj}, {@code v_proj}).
   */
  String target() default "";

  /** Rank r of each of the two products, 1..4096. */
  int rank() default 8;

  /** Scale numerator; the update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 8;

  /** Dropout probability applied to the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

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

  /** Container for repeated {@link LoHa} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    LoHa[] value();
  }
}
