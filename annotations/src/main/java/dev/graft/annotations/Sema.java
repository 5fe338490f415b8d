package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * SEMA's mixture of adapters (Wang et al., CVPR 2025): beside each chosen layer's feed-forward
 * block a pool of parallel adapters mixed by a softmax router, {@code h + Σ_i g_i(x) ·
 * up_i(relu(down_i(x)))}. The pools grow across tasks in the continual-learning loop
 * {@code dev.graft.dsl.continual.Sema}; here they are declared with fixed sizes.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Sema.List.class)
public @interface Sema {
  /** Regular expression that must match a feed-forward block's last linear node; empty: every layer's. */
  String target() default "";

  /** Reduction factor: each adapter has {@code max(1, floor(size / reduction))} units, 1..65536. */
  int reduction() default 16;

  /** Adapters in each selected layer's pool, in ascending layer order; empty: one per layer. */
  int[] poolPerLayer() default {};

  /** Frozen leading adapters (and router columns) of each selected layer's pool; empty: none. */
  int[] frozenPerLayer() default {};

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /**
   * Quantized adapter (Jie et al., ICCV 2023): this adapter's weight tensors of two or more axes
   * trained at 1, 2, 4 or 8 bits (the Lloyd-Max levels of N(0, 1) after per-tensor
   * standardization, straight-through gradient); 0, the default, keeps full precision.
   */
  int quantizeBits() default 0;

  /** Container for repeated {@link Sema} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Sema[] value();
  }
}
