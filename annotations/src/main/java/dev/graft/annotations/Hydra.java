package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Hydra on each feed-forward block whose last linear node matches {@link #target()} (empty:
 * every layer's): a parallel branch P from the block's input x and a sequential branch S from its
 * output h, {@code h' = h + scaling · (P(x) + S(h))}, each branch {@code up(act(down(·)))}.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Hydra.List.class)
public @interface Hydra {
  /** Regular expression that must match the block's last linear node; empty: all. */
  String target() default "";

  /** Reduction factor of both branches: {@code floor(width / reduction)} units; 1..65536. */
  int reduction() default 16;

  /** The activation inside both branches; identity (linear branches) as in Kim et al. */
  Nonlinearity nonlinearity() default Nonlinearity.IDENTITY;

  /** The branches' sum is multiplied by this before it is added; positive. */
  double scaling() default 1.0;

  /** Initialization (AdapterHub's {@code init_weights} names); the default starts Hydra as the identity. */
  Bottleneck.InitWeights initWeights() default Bottleneck.InitWeights.MAM_ADAPTER;

  /** Layer indices to adapt; empty means all layers. */
  int[] layers() default {};

  /** Activations of Hydra's branches. */
  enum Nonlinearity {
    /** Linear branches (mergeable into the host). */
    IDENTITY,
    RELU,
    GELU,
    TANH,
    SWISH
  }

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

  /** Container for repeated {@link Hydra} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Hydra[] value();
  }
}
