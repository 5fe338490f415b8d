package dev.graft.compiler.kinds;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The Lloyd-Max levels of N(0, 1) against Max's published table (IRE Trans. IT 1960) and the
 * closed form of 1 bit, and the two optimality conditions the iteration stops at.
 */
class LloydMaxTest {
  @Test
  void oneBitIsPlusMinusTheHalfNormalMean() {
    double m = Math.sqrt(2 / Math.PI);
    assertArrayEquals(new double[] {-m, m}, LloydMax.levels(1), 1e-12);
    assertArrayEquals(new double[] {0}, LloydMax.thresholds(1), 0);
  }

  @Test
  void twoBitsMatchMaxsTable() {
    assertArrayEquals(new double[] {-1.5104, -0.4528, 0.4528, 1.5104}, LloydMax.levels(2), 5e-5);
    assertArrayEquals(new double[] {-0.9816, 0, 0.9816}, LloydMax.thresholds(2), 5e-5);
  }

  @Test
  void fourBitsMatchMaxsTable() {
    double[] half = {0.1284, 0.3881, 0.6568, 0.9424, 1.2562, 1.6180, 2.0690, 2.7326};
    double[] levels = LloydMax.levels(4);
    for (int i = 0; i < 8; i++) {
      assertEquals(half[i], levels[8 + i], 1.5e-4, "level " + (8 + i));
      assertEquals(-half[i], levels[7 - i], 1.5e-4, "level " + (7 - i));
    }
  }

  @Test
  void everyWidthIsAFixedPointOfTheIteration() {
    for (int bits : LloydMax.BITS) {
      double[] y = LloydMax.levels(bits);
      double[] t = LloydMax.thresholds(bits);
      assertEquals((1 << bits) - 1, t.length);
      for (int i = 0; i < y.length; i++) {
        double a = i == 0 ? Double.NEGATIVE_INFINITY : t[i - 1];
        double b = i == y.length - 1 ? Double.POSITIVE_INFINITY : t[i];
        assertTrue(a < y[i] && y[i] < b, bits + " bits: level " + i + " outside its cell");
        double centroid = (LloydMax.pdf(a) - LloydMax.pdf(b)) / LloydMax.mass(a, b);
        assertEquals(centroid, y[i], 1e-8, bits + " bits: level " + i + " is not its cell's conditional mean");
        assertEquals(-y[y.length - 1 - i], y[i], 0, "symmetric");
      }
    }
  }

  /** The constants are what the iteration computes now (8 bits: some 70,000 iterations, seconds). */
  @Test
  void theWrittenTablesAreTheIterationsResult() {
    for (int bits : LloydMax.BITS) {
      double[] solved = LloydMax.solve(1 << bits);
      double[] table = LloydMax.levels(bits);
      assertEquals(1 << bits, table.length);
      for (int i = 0; i < table.length; i++) {
        assertEquals(solved[i], table[i], 1e-13, bits + " bits, level " + i);
        assertEquals(-table[table.length - 1 - i], table[i], 0, "symmetric");
      }
    }
  }

  @Test
  void normalTailsAreAccurate() {
    assertEquals(0.15865525393145707, LloydMax.upperTail(1), 1e-15);
    assertEquals(2.866515718791933e-7, LloydMax.upperTail(5), 1e-20);
    assertEquals(0.5, LloydMax.upperTail(0), 1e-16);
  }

  @Test
  void otherWidthsAreRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> LloydMax.levels(3));
    assertEquals("quantized adapters take 1, 2, 4 or 8 bits, got 3", e.getMessage());
  }
}
