package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Earth-Adapter (Hu et al. 2025), a mixture of frequency adaptation, at the linear layers whose
 * node name matches {@link #target()} in full, for a vision transformer whose tokens are a patch
 * grid (after a class token or not): on the block output their output is added into ({@link
 * #input()} {@code block}, the default) or on their output. A fixed 2-D DFT low-pass over the grid
 * splits the tokens x into {@code low} and {@code high = x − low}; bottleneck adapters on x, low and
 * high are mixed per token by a learned softmax router and added to x.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(EarthAdapter.List.class)
public @interface EarthAdapter {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes each
   * layer's feed-forward output dense ({@code .../layer.N/output/dense/MatMul}).
   */
  String target() default "";

  /**
   * Low-pass cutoff in [0, 2): for {@code box} the reference's {@code cutoff_ratio} (signed
   * frequencies −c..c−1 kept per axis, c = ⌊min(h, w)·cutoff / 2⌋); for {@code radial} and
   * {@code square} a normalized frequency radius (1 is the grid's Nyquist frequency per axis).
   */
  double cutoff() default 0.3;

  /** The mask's shape: {@code box} (the reference implementation's), {@code radial} or {@code square}. */
  String mask() default "box";

  /** Bottleneck reduction factor: each adapter has max(1, width / reduction) units. */
  int reduction() default 16;

  /** Activation inside each adapter: relu, gelu, tanh or swish. */
  String nonlinearity() default "relu";

  /** Adapter initialization: mam_adapter (up projection zero), bert or houlsby. */
  String initWeights() default "mam_adapter";

  /** Patch grid rows; 0 infers a square grid from the token count. */
  int gridHeight() default 0;

  /** Patch grid columns; 0 infers a square grid from the token count. */
  int gridWidth() default 0;

  /** Tokens before the grid that pass unfiltered (a class token); -1 infers 1, then 0. */
  int extraTokens() default -1;

  /**
   * What the adapter reads and replaces: {@code block} (the reference's) the residual sum the
   * target's output is added into, i.e. the block's output; {@code output} the target's output
   * itself, bias included.
   */
  String input() default "block";

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
   * adapter can be composed ({@link Compose}), trained or frozen, activated, saved and loaded by name.
   */
  String name() default "";

  /** Container for repeated {@link EarthAdapter} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    EarthAdapter[] value();
  }
}
