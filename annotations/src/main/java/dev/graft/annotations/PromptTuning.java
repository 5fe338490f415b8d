package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Prompt tuning: {@link #tokens()} learned virtual token embeddings P [tokens, hidden] before the
 * input's own word embeddings. The host's {@code input_ids}, {@code attention_mask} and {@code
 * token_type_ids} are extended inside the graph (pad ids, ones, zeros) so positions and masks see
 * {@code tokens + sequence} tokens; the host output the task reads keeps only the real positions.
 * The site is found by itself (the word-embedding lookup of {@code input_ids}); {@link #target()}
 * may name it.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(PromptTuning.List.class)
public @interface PromptTuning {
  /** Regular expression that must match the word-embedding Gather's node name; empty: the one found. */
  String target() default "";

  /** Virtual tokens, 1..4096; {@code tokens + sequence} must not exceed the host's positions. */
  int tokens() default 20;

  /** How P starts. */
  Init init() default Init.VOCAB;

  /** Layer filter; prompt tuning's site has no layer, so leave it empty. */
  int[] layers() default {};

  /** Initializations of P. */
  enum Init {
    /** Copies of the word embeddings of seeded random vocabulary rows. */
    VOCAB,
    /** N(0, 1), as PEFT's RANDOM ({@code torch.nn.Embedding}'s default). */
    RANDOM
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

  /** Container for repeated {@link PromptTuning} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    PromptTuning[] value();
  }
}
