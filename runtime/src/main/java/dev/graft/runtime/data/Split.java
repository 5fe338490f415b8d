package dev.graft.runtime.data;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * A seeded train / held-out split.
 *
 * @param train examples to train on
 * @param heldOut examples to evaluate on
 */
public record Split<T>(List<T> train, List<T> heldOut) {
  public Split {
    train = List.copyOf(train);
    heldOut = List.copyOf(heldOut);
  }

  /**
   * Shuffles a copy of {@code all} with {@code seed} and holds out the last
   * {@code round(heldOutFraction * size)} examples. The same seed gives the same split.
   */
  public static <T> Split<T> of(List<T> all, double heldOutFraction, long seed) {
    if (!(heldOutFraction >= 0 && heldOutFraction < 1)) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "heldOutFraction must be in [0, 1), got " + heldOutFraction);
    }
    List<T> copy = new ArrayList<>(all);
    Collections.shuffle(copy, new Random(seed));
    int held = (int) Math.round(heldOutFraction * copy.size());
    int cut = copy.size() - held;
    return new Split<>(copy.subList(0, cut), copy.subList(cut, copy.size()));
  }
}
