package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A parallel adapter beside each feed-forward block whose last linear node matches {@link
 * #target()} (empty: every layer's): from the block's input x to its output h, {@code h' = h +
 * scaling · up(act(down(x)))}.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(ParallelAdapter.List.class)
public @interface ParallelAdapter {
  /** Regular expression that must match the block's last linear node, e.g. {@code ".*output/dense/MatMul"}; empty: all. */
  String target() default "";

  /** Reduction factor: the bottleneck has {@code floor(in / reduction)} units; 1..65536. */
  int reduction() default 2;

  /** The activation between the projections. */
  Bottleneck.Nonlinearity nonlinearity() default Bottleneck.Nonlinearity.RELU;

  /** The adapter's output is multiplied by this before it is added; positive. */
  double scaling() default 4.0;

  /** Initialization (AdapterHub's {@code init_weights}); the default starts the adapter as the identity. */
  Bottleneck.InitWeights initWeights() default Bottleneck.InitWeights.MAM_ADAPTER;

  /** Layer indices to adapt; empty means all layers. */
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

  /** Container for repeated {@link ParallelAdapter} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    ParallelAdapter[] value();
  }
}
