package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Prefix tuning: every chosen attention block attends to {@link #tokens()} learned key and value
 * rows before the sequence's own (PEFT's {@code past_key_values} layout). Sites are attention
 * blocks, named by their scores MatMul (e.g. {@code /encoder/layer.0/attention/self/MatMul}),
 * found by themselves; an empty {@link #target()} takes every block.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(PrefixTuning.List.class)
public @interface PrefixTuning {
  /** Regular expression that must match an attention block's scores MatMul node name; empty: every block. */
  String target() default "";

  /** Virtual positions per block, 1..4096. */
  int tokens() default 20;

  /** Reparameterize the prefix through a two-layer tanh MLP (PEFT's {@code prefix_projection}). */
  boolean projection() default false;

  /** Hidden width of the projection MLP, 1..65536 (PEFT's {@code encoder_hidden_size}). */
  int projectionHidden() default 512;

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

  /** Container for repeated {@link PrefixTuning} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    PrefixTuning[] value();
  }
}
