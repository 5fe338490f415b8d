package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * SoKA (SVD on Kronecker Adaptation) on the linear sites whose node name matches {@link #target()}
 * in full: the compiler splits each weight {@code W [in, out]} into its Kronecker-product SVD
 * {@code Σ_k A_k ⊗ B_k} ({@code A_k [i1, o1]}, {@code B_k [i2, o2]}), trains the first K terms and
 * keeps the residual frozen, so the graft starts at the host's output.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Soka.List.class)
public @interface Soka {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes
   * the attention query and value projections ({@code query}, {@code value}, {@code q_proj}, {@code v_proj}).
   */
  String target() default "";

  /** i1, the input side of each A_k ({@code in = i1·i2}): -1 (the default) splits near the square root; else a divisor of every input width. */
  int inFactor() default -1;

  /** o1, the output side of each A_k ({@code out = o1·o2}): -1 (the default) splits near the square root; else a divisor of every output width. */
  int outFactor() default -1;

  /**
   * How many terms K a site keeps: {@code "both"} (the default: the fewer of the two counts below),
   * {@code "energy"} (see {@link #energy()}) or {@code "elbow"} (the spectrum's knee).
   */
  String rule() default "both";

  /** With rules {@code "energy"} and {@code "both"}: the smallest K whose terms hold this share of {@code Σ σ²}, in [0, 1). */
  double energy() default 0.9;

  /** The most terms K a site keeps, 1..4096. */
  int maxTerms() default 8;

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
   * adapter's parameters are named {@code <name>.<module>.<suffix>}.
   */
  String name() default "";

  /** Container for repeated {@link Soka} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Soka[] value();
  }
}
