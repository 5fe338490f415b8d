package dev.graft.compiler.kinds;

import java.util.OptionalInt;

/**
 * A place in the host an adapter can attach to: a linear layer ({@link LinearSite}) or whatever
 * else a kind finds (an embedding lookup, an attention block, a host parameter).
 */
public interface Site {
  /** The name a declaration's selector is matched against, in full (a host node name, usually). */
  String node();

  /** The module path PEFT uses for the site, e.g. {@code encoder.layer.0.attention.self.query}. */
  String modulePath();

  /** The layer index found in the site's name, if any. */
  OptionalInt layer();

  /** The last segment of the module path ({@code query}): what PEFT's target_modules lists. */
  default String moduleName() {
    String path = modulePath();
    int dot = path.lastIndexOf('.');
    return dot < 0 ? path : path.substring(dot + 1);
  }
}
