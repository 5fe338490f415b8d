package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A sequential bottleneck adapter on the output h of each linear layer whose node name matches
 * {@link #target()} (its bias included): {@code h' = h + up(act(down(h)))}, down {@code [out,
 * out/reduction]} and up {@code [out/reduction, out]} with biases. An empty target takes the
 * sites of {@link #config()}.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Bottleneck.List.class)
public @interface Bottleneck {
  /** Regular expression that must match a whole host node name, e.g. {@code ".*output/dense/MatMul"}; empty: {@link #config()}'s sites. */
  String target() default "";

  /** The sites an empty target takes: after each feed-forward output (Pfeiffer) or after the attention output too (Houlsby). */
  Config config() default Config.PFEIFFER;

  /** Reduction factor: the bottleneck has {@code floor(out / reduction)} units; 1..65536. */
  int reduction() default 16;

  /** The activation between the projections. */
  Nonlinearity nonlinearity() default Nonlinearity.RELU;

  /** Add the adapter's output to its input; without it the adapter replaces h. */
  boolean residual() default true;

  /** Initialization (AdapterHub's {@code init_weights}); the default starts the adapter as the identity. */
  InitWeights initWeights() default InitWeights.MAM_ADAPTER;

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /** Default sites of a bottleneck adapter. */
  enum Config {
    /** After each layer's feed-forward output dense ({@code /encoder/layer.N/output/dense/MatMul}). */
    PFEIFFER,
    /** After each layer's attention output dense and feed-forward output dense. */
    HOULSBY
  }

  /** Activations of bottleneck adapters. */
  enum Nonlinearity {
    RELU,
    /** {@code x·(1 + erf(x/√2))/2}. */
    GELU,
    TANH,
    /** {@code x·sigmoid(x)}. */
    SWISH
  }

  /** Initializations of bottleneck adapters (biases are zero in each). */
  enum InitWeights {
    /** Down kaiming-uniform (bound {@code 1/sqrt(in)}), up zero: the adapter starts as the identity. */
    MAM_ADAPTER,
    /** Both projections normal(0, 0.02). */
    BERT,
    /** Both projections normal(0, 0.01) (AdapterHub truncates at two standard deviations; Graft does not). */
    HOULSBY
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

  /** Container for repeated {@link Bottleneck} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Bottleneck[] value();
  }
}
