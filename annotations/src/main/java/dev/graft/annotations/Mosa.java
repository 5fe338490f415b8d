package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * MoSA, a mixture of sparse adapters (Zhang et al., 2023): a sequential bottleneck {@code h' = h +
 * up(act(down(h)))} on the output of each linear layer whose node name matches {@link #target()},
 * its entries split into {@link #modules()} disjoint random sparse modules. Each training step
 * trains {@link #active()} of them, drawn from the step's seed at each site ({@link #draw()}; the
 * others contribute nothing and are not updated); inference and saved files use the merged
 * adapter, the union of the modules.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Mosa.List.class)
public @interface Mosa {
  /** Regular expression that must match a whole host node name; empty: {@link #config()}'s sites. */
  String target() default "";

  /** The sites an empty target takes, as {@link Bottleneck#config()}. */
  Bottleneck.Config config() default Bottleneck.Config.PFEIFFER;

  /** Reduction factor: the bottleneck has {@code floor(out / reduction)} units; 1..65536. */
  int reduction() default 16;

  /** The activation between the projections. */
  Bottleneck.Nonlinearity nonlinearity() default Bottleneck.Nonlinearity.RELU;

  /** Initialization, as {@link Bottleneck#initWeights()}. */
  Bottleneck.InitWeights initWeights() default Bottleneck.InitWeights.MAM_ADAPTER;

  /** Number of disjoint sparse modules, 2..64. */
  int modules() default 4;

  /** Modules trained each step, 1..modules − 1. */
  int active() default 1;

  /** Seed of the fixed random split of the entries into modules. */
  int partitionSeed() default 0;

  /**
   * Tensors split into modules: {@code up} (the up projection's weight; the reference's recipe),
   * {@code down}, {@code both} weights, or {@code all} (weights and biases); the rest train whole.
   */
  String split() default "up";

  /** Scale the active entries by modules / active in training (inverted dropout; not the reference's). */
  boolean rescale() default false;

  /**
   * How the active modules are drawn each step: {@code site} (each adapted site draws its own,
   * independently, as the reference's blocks do) or {@code step} (one draw shared by every site).
   */
  String draw() default "site";

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /**
   * Quantized adapter (Jie et al., ICCV 2023): this adapter's weight tensors of two or more axes
   * trained at 1, 2, 4 or 8 bits (the Lloyd-Max levels of N(0, 1) after per-tensor
   * standardization, straight-through gradient); 0, the default, keeps full precision.
   */
  int quantizeBits() default 0;

  /** The adapter's name ({@code [a-z][a-z0-9_]*}, unique in the graft); empty: unnamed. */
  String name() default "";

  /** Container for repeated {@link Mosa} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Mosa[] value();
  }
}
