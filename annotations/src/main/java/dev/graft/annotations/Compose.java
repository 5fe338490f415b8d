package dev.graft.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Repeatable;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * A composition block of named adapters at the linear layers they share, in Graft's composition
 * syntax: {@code stack(a, b)} (series), {@code parallel(a, b)} (sum of updates), {@code average(a,
 * b)} (learned weights) or {@code average(a: 0.25, b: 0.75)}, {@code fuse(a, b)} (AdapterFusion),
 * {@code split(a: 192, b: 192)} (parts of the hidden axis), nested two deep, e.g. {@code
 * stack(lang, fuse(a, b))}. Every adapter of a block must be named, of a kind that acts on a
 * linear layer's output, and placed on the same layers.
 */
@Documented
@Retention(RetentionPolicy.SOURCE)
@Target(ElementType.TYPE)
@Repeatable(Compose.List.class)
public @interface Compose {
  /** The block, e.g. {@code "stack(lang, fuse(a, b))"}. */
  String value();

  /** Container for repeated {@link Compose} annotations. */
  @Documented
  @Retention(RetentionPolicy.SOURCE)
  @Target(ElementType.TYPE)
  @interface List {
    Compose[] value();
  }
}
