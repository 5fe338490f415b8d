package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * LoRA on the linear sites whose node name matches {@link #target()} in full:
 * {@code y = xW (+ b) + scaling · dropout(x) · A · B}, with {@code scaling = alpha / rank}
 * ({@code alpha / sqrt(rank)} under {@link #rslora()}), A kaiming-uniform and B zero. {@link
 * #dora()} adds DoRA's magnitude; {@link #init()} {@code PISSA} starts A and B at the host
 * weight's principal factors.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Lora.List.class)
public @interface Lora {
  /**
   * Regular expression that must match a whole host node name, e.g. {@code
   * ".*(query|value)/MatMul"}; empty (the default) takes the query and value projections, the
   * MatMul or Gemm nodes (int8 hosts: MatMul_quant) under a {@code query}, {@code value}, {@code
   * q_proj} or {@code v_proj} module (any case), as PEFT does for BERT and Llama.
   */
  String target() default "";

  /** Rank r of the update, 1..4096. */
  int rank() default 8;

  /** Scale numerator; the update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 16;

  /** Dropout probability applied to the adapter's input during training, in [0, 1). */
  double dropout() default 0.0;

  /** Rank-stabilized scaling {@code alpha / sqrt(rank)}. */
  boolean rslora() default false;

  /**
   * DoRA: a trainable magnitude m per output column (initially the host weight's column norms)
   * rescales the updated weight, {@code y = (m / ‖W + scaling·A·B‖_col) ⊙ x·(W + scaling·A·B) (+ b)}.
   */
  boolean dora() default false;

  /** How A and B start: {@link Init#DEFAULT}, {@link Init#PISSA}, {@link Init#CORDA_IPM} or {@link Init#CORDA_KPM}. */
  Init init() default Init.DEFAULT;

  /** Initial values of LoRA's A and B. */
  enum Init {
    /** A kaiming-uniform, B zero: the update starts at zero. */
    DEFAULT,
    /**
     * PiSSA: A and B start at the principal factors of the host weight at rank r, and the graph
     * subtracts their initial product so the host's output starts unchanged.
     */
    PISSA,
    /**
     * CorDA, instruction-previewed mode: A and B start at the largest factors of the host weight
     * times the covariance of the layer's inputs, which {@code AdapterModel.calibrate} collects on
     * the caller's data before training; the host's output starts unchanged, as with PiSSA.
     */
    CORDA_IPM,
    /** CorDA, knowledge-preserved mode: as {@link #CORDA_IPM}, from the smallest factors. */
    CORDA_KPM
  }

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

  /** Container for repeated {@link Lora} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Lora[] value();
  }
}
