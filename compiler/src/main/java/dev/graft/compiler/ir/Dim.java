package dev.graft.compiler.ir;

import java.util.Objects;
import org.jspecify.annotations.Nullable;

/**
 * One dimension of a tensor shape: a known size, a named symbol ({@code batch_size}), or
 * unknown. Two dims are known equal when both are the same size or the same symbol.
 */
public final class Dim {
  private static final Dim UNKNOWN = new Dim(0, null, false);

  private final long size;
  private final @Nullable String symbol;
  private final boolean known;

  private Dim(long size, @Nullable String symbol, boolean known) {
    this.size = size;
    this.symbol = symbol;
    this.known = known;
  }

  /**
   * A known value. Shapes hold sizes ≥ 0; the values of shape tensors that shape inference
   * tracks (e.g. a Reshape target) may also be negative.
   */
  public static Dim of(long size) {
    return new Dim(size, null, true);
  }

  public static Dim symbol(String name) {
    return new Dim(0, name, false);
  }

  public static Dim unknown() {
    return UNKNOWN;
  }

  public boolean isKnown() {
    return known;
  }

  public boolean isSymbol() {
    return symbol != null;
  }

  /** The size; only for {@link #isKnown()} dims. */
  public long size() {
    if (!known) {
      throw new IllegalStateException("dimension " + this + " has no fixed size");
    }
    return size;
  }

  public @Nullable String symbolName() {
    return symbol;
  }

  public boolean is(long value) {
    return known && size == value;
  }

  /** True when both dims are certainly equal (same size or same symbol). */
  public boolean sameAs(Dim other) {
    return known ? other.known && size == other.size : symbol != null && symbol.equals(other.symbol);
  }

  /** The product of two dims, when both are known and it does not overflow; unknown otherwise. */
  public Dim times(Dim other) {
    if (isKnown() && other.isKnown()) {
      long high = Math.multiplyHigh(size, other.size);
      long low = size * other.size;
      return (high == 0 && low >= 0) || (high == -1 && low < 0) ? of(low) : UNKNOWN;
    }
    if (is(1)) {
      return other;
    }
    if (other.is(1)) {
      return this;
    }
    if (isSymbol() && other.isSymbol() && !symbol.contains("+") && !other.symbol.contains("+")) {
      return product(factors(this), factors(other));
    }
    return UNKNOWN;
  }

  /**
   * The symbolic factors of a product symbol ({@code batch_size*sequence_length} has two); a
   * plain symbol is its own one factor; empty for a size or an unknown dim.
   */
  public static java.util.List<String> factors(Dim d) {
    if (d.symbol == null) {
      return java.util.List.of();
    }
    return d.symbol.contains("+") ? java.util.List.of(d.symbol) : java.util.List.of(d.symbol.split("\\*", -1));
  }

  /**
   * The product of symbolic factors in one canonical spelling (sorted, joined by {@code *}), so
   * that {@code Reshape(x, [-1, k])} of a {@code [batch, sequence, k]} value and the reshape back
   * agree on one dimension.
   */
  public static Dim product(java.util.List<String> a, java.util.List<String> b) {
    java.util.List<String> all = new java.util.ArrayList<>(a);
    all.addAll(b);
    if (all.isEmpty()) {
      return of(1);
    }
    java.util.Collections.sort(all);
    return symbol(String.join("*", all));
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Dim d && d.known == known && d.size == size && Objects.equals(d.symbol, symbol);
  }

  @Override
  public int hashCode() {
    return Objects.hash(size, symbol, known);
  }

  @Override
  public String toString() {
    return isKnown() ? Long.toString(size) : symbol != null ? symbol : "?";
  }
}
