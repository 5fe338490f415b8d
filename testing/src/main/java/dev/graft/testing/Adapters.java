package dev.graft.testing;

import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;
import java.util.Map;

/** Adapter declarations for tests, as the builder makes them. */
public final class Adapters {
  private Adapters() {}

  /** LoRA of rank {@code rank} and scale numerator {@code alpha}, no dropout, on every site {@code target} matches. */
  public static AdapterSpec lora(String target, int rank, double alpha) {
    return new AdapterSpec("lora", target, List.of(), Map.of("rank", rank, "alpha", alpha), null);
  }

  /** An adapter of {@code kind} with {@code options} on every site {@code target} matches. */
  public static AdapterSpec of(String kind, String target, Map<String, Object> options) {
    return new AdapterSpec(kind, target, List.of(), options, null);
  }
}
