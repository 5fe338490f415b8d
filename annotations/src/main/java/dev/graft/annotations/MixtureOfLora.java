package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A mixture of LoRA experts on the linear sites whose node name matches {@link #target()} in
 * full: {@code y = xW (+ b) + (alpha / rank) · Σ_e g_e(x) · dropout(x)·A_e·B_e}, with {@link
 * #experts()} experts per site (A kaiming-uniform, B zero) and gates {@code g} from a learned
 * per-token router {@code x·W_r}: a softmax over every expert ({@link Router#SOFT}) or over the
 * {@link #topK()} largest logits ({@link Router#TOP_K}, which adds a load-balancing loss to the
 * training loss).
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(MixtureOfLora.List.class)
public @interface MixtureOfLora {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes the
   * query and value projections, as {@link Lora} does.
   */
  String target() default "";

  /** Rank r of each expert, 1..4096. */
  int rank() default 8;

  /** Scale numerator; each expert's update is multiplied by {@code alpha / rank}. Must be positive. */
  double alpha() default 16;

  /** Dropout probability on the experts' input during training (the router reads x without it), in [0, 1). */
  double dropout() default 0.0;

  /** Number of experts E at every site, 1..256. */
  int experts() default 4;

  /**
   * Expert count of each selected layer, in ascending layer order (e.g. {@code {2, 2, 2, 4, 4,
   * 8}} for six layers); overrides {@link #experts()} when not empty. Needs one entry per layer
   * the declaration selects.
   */
  int[] expertsPerLayer() default {};

  /** How the router turns its logits into expert weights. */
  Router router() default Router.SOFT;

  /** Experts kept per token by {@link Router#TOP_K}, at most the expert count of every site. */
  int topK() default 2;

  /** Weight of each site's load-balancing loss in the training loss ({@link Router#TOP_K}), at least 0. */
  double auxLossWeight() default 0.01;

  /** Layer indices to adapt (the {@code layer.N} part of node names); empty means all layers. */
  int[] layers() default {};

  /**
   * Quantized adapter (Jie et al., ICCV 2023): this adapter's weight tensors of two or more axes
   * trained at 1, 2, 4 or 8 bits (the Lloyd-Max levels of N(0, 1) after per-tensor
   * standardization, straight-through gradient); 0, the default, keeps full precision.
   */
  int quantizeBits() default 0;

  /** The router of a mixture. */
  enum Router {
    /** Softmax over every expert's logit: every expert contributes to every token. */
    SOFT,
    /**
     * Softmax over the {@link #topK()} largest logits of each token (the others weigh 0), plus
     * Switch Transformers' load-balancing loss {@code E · Σ_e f_e · P_e}.
     */
    TOP_K
  }

  /** Container for repeated {@link MixtureOfLora} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    MixtureOfLora[] value();
  }
}
