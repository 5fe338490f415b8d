package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * IA³ on the linear sites whose node name matches {@link #target()} in full: a learned vector
 * starting at one scales a feed-forward site's input ({@code (x ⊙ l)·W + b}) and any other
 * site's output ({@code (xW + b) ⊙ l}).
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Ia3.List.class)
public @interface Ia3 {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes
   * the attention key and value projections and the feed-forward output projection ({@code
   * /output/dense} but not {@code /attention/output/dense}; {@code down_proj}, {@code fc2}).
   */
  String target() default "";

  /**
   * Regular expression (matched in full against node names) of the sites treated as feed-forward,
   * whose input is scaled; by default a BERT layer's {@code output/dense} (not the attention
   * output's), {@code down_proj} and {@code fc2}.
   */
  String feedforward() default
      "(?i).*(?<!/attention)/output/dense/(MatMul|MatMul_quant|Gemm)|.*/(down_proj|fc2)/(MatMul|MatMul_quant|Gemm)";

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

  /** Container for repeated {@link Ia3} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Ia3[] value();
  }
}
