package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Multi-head routing (MHR, Caccia et al. 2023) on the linear sites whose node name matches {@link
 * #target()} in full: an inventory of {@link #pieces()} LoRA pieces, shared by every site of the
 * same shape (see {@link #sharePieces()}), each cut into {@link #heads()} blocks of input rows (A)
 * and output columns (B); every site learns routing logits {@code Z [heads, pieces]} and uses, per
 * block h, the pieces' blocks weighted by {@code softmax(Z_h)}: {@code y = xW (+ b) + (alpha /
 * rank) · dropout(x)·A·B}.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(MultiHeadRouting.List.class)
public @interface MultiHeadRouting {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes the
   * query and value projections, as {@link Lora} does.
   */
  String target() default "";

  /** Rank r of every piece, 1..4096. */
  int rank() default 8;

  /** Scale numerator; the update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 16;

  /** Dropout probability on the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

  /** LoRA pieces in the inventory (PEFT's {@code n_skills}), 1..256. */
  int pieces() default 4;

  /** Routing heads (PEFT's {@code n_splits}); must divide every site's input and output size. 1 is Polytropon. */
  int heads() default 4;

  /**
   * One inventory for every site of the same {@code [in, out]}, across layers (true), or one per
   * site as in the paper (false).
   */
  boolean sharePieces() default true;

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /**
   * Quantized adapter (Jie et al., ICCV 2023): this adapter's weight tensors of two or more axes
   * trained at 1, 2, 4 or 8 bits (the Lloyd-Max levels of N(0, 1) after per-tensor
   * standardization, straight-through gradient); 0, the default, keeps full precision.
   */
  int quantizeBits() default 0;

  /** Container for repeated {@link MultiHeadRouting} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    MultiHeadRouting[] value();
  }
}
