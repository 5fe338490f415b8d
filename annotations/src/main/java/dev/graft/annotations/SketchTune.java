package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * SketchTune on the linear sites whose node name matches {@link #target()} in full: each host
 * weight is replaced by 4-bit indices (built by 1-D k-means at compile time) into codebooks of 16
 * values, one per group of {@link #groupSize()} output channels (and {@link #groupsPerRow()} column
 * groups of their inputs); only the codebooks train.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(SketchTune.List.class)
public @interface SketchTune {
  /**
   * Regular expression that must match a whole host node name; empty (the default) takes
   * the attention query and value projections ({@code query}, {@code value}, {@code q_proj}, {@code v_proj}).
   */
  String target() default "";

  /** Output channels sharing one codebook; must divide every site's output width. */
  int groupSize() default 8;

  /**
   * Column groups along each output channel's inputs (the reference's GPR): each block of {@link
   * #groupSize()} channels gets one codebook per contiguous run of {@code inputs / groupsPerRow}
   * inputs; must be at least 1 and divide every site's input width.
   */
  int groupsPerRow() default 1;

  /** The most Lloyd rounds of each group's k-means, 1..1000. */
  int iterations() default 20;

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

  /** Container for repeated {@link SketchTune} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    SketchTune[] value();
  }
}
