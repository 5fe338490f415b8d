package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * DyLoRA on the linear sites whose node name matches {@link #target()} in full: LoRA trained at
 * every rank up to {@link #rank()} at once. Each training step draws a rank b in 1..rank from the
 * step's seed and uses A's first b columns and B's first b rows, scaled by {@code alpha / b};
 * inference uses the full rank ({@code alpha / rank}). A trained adapter can be truncated to, or
 * exported as a plain PEFT LoRA at, any rank up to the maximum.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(DyLora.List.class)
public @interface DyLora {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes the
   * query and value projections, as {@link Lora#target()}.
   */
  String target() default "";

  /** The maximum rank, 1..4096; each step trains a rank in 1..rank. */
  int rank() default 8;

  /** Scale numerator; rank b is scaled by {@code alpha / b}. Must be positive. */
  double alpha() default 16;

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

  /** Container for repeated {@link DyLora} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    DyLora[] value();
  }
}
