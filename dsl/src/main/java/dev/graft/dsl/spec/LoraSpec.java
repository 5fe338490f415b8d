package dev.graft.dsl.spec;

import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * LoRA on every linear site whose node name matches {@code target} in full (and whose layer
 * index is in {@code layers}, when that is not empty).
 *
 * @param source opaque reference to where the declaration was written, for diagnostics only
 */
public record LoraSpec(
    String target,
    int rank,
    double alpha,
    double dropout,
    boolean rslora,
    List<Integer> layers,
    @Nullable Object source) {
  public static final int MAX_RANK = 4096;

  public LoraSpec {
    layers = List.copyOf(layers);
  }

  /** {@code alpha / rank}, or {@code alpha / sqrt(rank)} with rsLoRA. */
  public double scaling() {
    return rslora ? alpha / Math.sqrt(rank) : alpha / rank;
  }
}
