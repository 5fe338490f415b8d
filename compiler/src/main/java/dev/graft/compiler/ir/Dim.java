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
    return UNKNOWN;
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
