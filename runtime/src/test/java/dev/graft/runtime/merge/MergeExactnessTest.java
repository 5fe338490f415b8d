package dev.graft.runtime.merge;

import static dev.graft.runtime.merge.LinearMergeTest.lora;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.GraftException;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The exactness checks: cat, the SVD re-rank, TIES, DARE and the others against hand-computed cases. */
class MergeExactnessTest {
  private static final double[] T1 = {3, -1, 0.5, -2};
  private static final double[] T2 = {-1, 2, 0.4, -3};

  private static AdapterDelta row(String name, double[] w) {
    return AdapterDelta.of(name, "", List.of(SiteDelta.dense("s", 1, w.length, w, null)), List.of());
  }

  private static double[] merged(String method, MergeOptions o, double w1, double w2) {
    return Merge.method(method).options(o).add(row("a", T1), w1).add(row("b", T2), w2).run().sites().get("s").weight();
  }

  @Test
  void catEqualsTheWeightedSumOfTheUpdates() {
    AdapterDelta x = AdapterDelta.of("x", "", List.of(lora("q", 12, 9, 3, 1)), List.of());
    AdapterDelta y = AdapterDelta.of("y", "", List.of(lora("q", 12, 9, 2, 2)), List.of());
    SiteDelta c = Merge.method("cat").add(x, 0.7).add(y, -1.3).run().sites().get("q");
    assertTrue(c.isFactored());
    assertEquals(5, c.rank());
    double[] dx = x.sites().get("q").weight();
    double[] dy = y.sites().get("q").weight();
    double[] got = c.weight();
    for (int i = 0; i < got.length; i++) {
      assertEquals(0.7 * dx[i] - 1.3 * dy[i], got[i], 1e-6);
    }
  }

  @Test
  void theSvdReRanksErrorEqualsTheDiscardedSingularValues() {
    int in = 10;
    int out = 8;
    double[] sigma = {5, 3, 2, 1, 0.5, 0.1};
    double[] u = orthonormal(in, sigma.length, 3);
    double[] v = orthonormal(out, sigma.length, 4);
    double[] a = new double[in * sigma.length];
    double[] b = new double[sigma.length * out];
    for (int i = 0; i < in; i++) {
      for (int k = 0; k < sigma.length; k++) {
        a[i * sigma.length + k] = u[i * sigma.length + k] * sigma[k];
      }
    }
    for (int k = 0; k < sigma.length; k++) {
      for (int j = 0; j < out; j++) {
        b[k * out + j] = v[j * sigma.length + k];
      }
    }
    SiteDelta factored = SiteDelta.factored("q", in, out, sigma.length, a, b, null);
    SiteDelta dense = SiteDelta.dense("q", in, out, factored.weight(), null);
    for (SiteDelta d : List.of(factored, dense)) {
      for (int r = 1; r <= 7; r++) {
        MergeResult m = Merge.method("linear").add(AdapterDelta.of("x", "", List.of(d), List.of()), 1).run().toRank(r);
        double want = 0;
        for (int k = r; k < sigma.length; k++) {
          want += sigma[k] * sigma[k];
        }
        want = Math.sqrt(want);
        SiteDelta low = m.sites().get("q");
        assertEquals(Math.min(r, out), low.rank());
        double[] w = d.weight();
        double[] l = low.weight();
        double err = 0;
        for (int i = 0; i < w.length; i++) {
          err += (w[i] - l[i]) * (w[i] - l[i]);
        }
        assertEquals(want, Math.sqrt(err), 1e-10, (d.isFactored() ? "factored" : "dense") + " rank " + r);
        assertEquals(want, m.discarded().get("q"), 1e-10);
        assertEquals(r, m.provenance().get("rank").getAsInt());
      }
    }
  }

  @Test
  void theSvdIsAccurateForSmallSingularValues() {
    double[] sigma = {1, 1e-3, 1e-6, 1e-9};
    double[] u = orthonormal(7, 4, 5);
    double[] v = orthonormal(4, 4, 6);
    double[] m = new double[7 * 4];
    for (int i = 0; i < 7; i++) {
      for (int j = 0; j < 4; j++) {
        for (int k = 0; k < 4; k++) {
          m[i * 4 + j] += u[i * 4 + k] * sigma[k] * v[j * 4 + k];
        }
      }
    }
    for (boolean wide : new boolean[] {false, true}) {
      Svd s = wide ? Svd.of(Svd.transpose(m, 7, 4), 4, 7) : Svd.of(m, 7, 4);
      for (int k = 0; k < 4; k++) {
        assertEquals(sigma[k], s.s()[k], 1e-15 * 10 + sigma[k] * 1e-12, "σ" + k);
      }
    }
  }

  @Test
  void tiesTrimsElectsASignAndTakesTheDisjointMean() {
    // density 0.5 keeps 2 of 4: [3, 0, 0, -2] and [0, 2, 0, -3]; signs of the sums [3, 2, 0, -5]:
    // +, +, none, -; the agreeing means: 3, 2, 0, (-2 - 3) / 2.
    assertArrayEquals(new double[] {3, 2, 0, -2.5}, merged("ties", MergeOptions.defaults().withDensity(0.5), 1, 1),
        1e-15);
    // Weights 2 and 1, nothing trimmed: 2·[1, -1] and [-3, 1] sum to [-1, -1]: both entries negative;
    // entry 0 only from the second input (-3 / 1), entry 1 only from the first (-2 / 2).
    double[] got = Merge.method("ties").density(1).add(row("a", new double[] {1, -1}), 2)
        .add(row("b", new double[] {-3, 1}), 1).run().sites().get("s").weight();
    assertArrayEquals(new double[] {-3, -1}, got, 1e-15);
    // lambda scales the result.
    assertArrayEquals(new double[] {1.5, 1, 0, -1.25},
        merged("ties", MergeOptions.defaults().withDensity(0.5).withLambda(0.5), 1, 1), 1e-15);
  }

  @Test
  void magnitudePruningAndTaskArithmetic() {
    assertArrayEquals(new double[] {3, 2, 0, -5},
        merged("magnitude_prune", MergeOptions.defaults().withDensity(0.5), 1, 1), 1e-15);
    assertArrayEquals(new double[] {1, 0.5, 0.45, -2.5},
        merged("task_arithmetic", MergeOptions.defaults().withLambda(0.5), 1, 1), 1e-15);
    // density 0.25 of 4 entries keeps 1: the largest magnitude.
    assertArrayEquals(new double[] {3, 0, 0, -3},
        merged("magnitude_prune", MergeOptions.defaults().withDensity(0.25), 1, 1), 1e-15);
  }

  @Test
  void dareDropsWithProbabilityPAndRescalesTheRest() {
    MergeOptions o = MergeOptions.defaults().withDropRate(0.75).withSeed(7);
    double[] got = merged("dare_linear", o, 1, 1);
    // By hand from the documented stream: entry j of input i is kept when its draw is ≥ p, then ×4.
    double[] want = new double[4];
    double[][] inputs = {T1, T2};
    for (int i = 0; i < 2; i++) {
      SplittableRandom r = Elementwise.stream(7, "s", i, "weight");
      for (int j = 0; j < 4; j++) {
        if (r.nextDouble() >= 0.75) {
          want[j] += 4 * inputs[i][j];
        }
      }
    }
    assertArrayEquals(want, got, 1e-15);
    // p = 0 keeps everything: dare_linear is the sum, dare_ties is TIES without trimming.
    assertArrayEquals(new double[] {2, 1, 0.9, -5}, merged("dare_linear", o.withDropRate(0), 1, 1), 1e-15);
    assertArrayEquals(merged("ties", o.withDensity(1), 1, 1), merged("dare_ties", o.withDropRate(0), 1, 1), 1e-15);
  }

  @Test
  void dareIsReproducibleFromItsSeedAndUnbiased() {
    double[] big = new double[20_000];
    Arrays.fill(big, 1.0);
    AdapterDelta x = AdapterDelta.of("x", "", List.of(SiteDelta.dense("s", 100, 200, big, null)), List.of());
    for (String method : List.of("dare_linear", "dare_ties")) {
      double[] first = Merge.method(method).dropRate(0.9).seed(11).add(x, 1).run().sites().get("s").weight();
      double[] again = Merge.method(method).dropRate(0.9).seed(11).add(x, 1).run().sites().get("s").weight();
      double[] other = Merge.method(method).dropRate(0.9).seed(12).add(x, 1).run().sites().get("s").weight();
      assertArrayEquals(first, again, 0.0);
      assertFalse(Arrays.equals(first, other));
      long kept = Arrays.stream(first).filter(v -> v != 0).count();
      for (double v : first) {
        assertTrue(v == 0 || Math.abs(v - 10) < 1e-12, "kept entries are 1 / (1 − 0.9) = 10, got " + v);
      }
      // 2000 expected kept of 20000; 5 standard deviations is ±212.
      assertTrue(Math.abs(kept - 2000) < 212, kept + " kept");
    }
  }

  @Test
  void abLinearAddsTheCrossTermsAndSaysSo() {
    AdapterDelta x = AdapterDelta.of("x", "", List.of(lora("q", 6, 5, 2, 1)), List.of());
    AdapterDelta y = AdapterDelta.of("y", "", List.of(lora("q", 6, 5, 2, 2)), List.of());
    MergeResult r = Merge.method("ab_linear").add(x, 0.5).add(y, 0.5).run();
    assertFalse(r.exact());
    assertFalse(r.provenance().get("exact").getAsBoolean());
    SiteDelta dx = x.sites().get("q");
    SiteDelta dy = y.sites().get("q");
    double[] cross1 = LowRank.times(dx.a(), 6, 2, dy.b(), 5);
    double[] cross2 = LowRank.times(dy.a(), 6, 2, dx.b(), 5);
    double[] got = r.sites().get("q").weight();
    double[] wx = dx.weight();
    double[] wy = dy.weight();
    double worst = 0;
    for (int i = 0; i < got.length; i++) {
      assertEquals(0.5 * wx[i] + 0.5 * wy[i] + 0.5 * (cross1[i] + cross2[i]), got[i], 1e-12);
      worst = Math.max(worst, Math.abs(0.5 * (cross1[i] + cross2[i])));
    }
    assertTrue(worst > 0.1, "the cross-terms are not negligible here: " + worst);
    AdapterDelta z = AdapterDelta.of("z", "", List.of(lora("q", 6, 5, 3, 3)), List.of());
    assertEquals("GRAFT-R131", assertThrows(GraftException.class,
        () -> Merge.method("ab_linear").add(x, 1).add(z, 1).run()).getCode());
  }

  @Test
  void biasChangesMergeLikeTheWeights() {
    AdapterDelta x = AdapterDelta.of("x", "", List.of(SiteDelta.dense("s", 1, 2, new double[] {1, 2},
        new double[] {1, -1})), List.of());
    AdapterDelta y = AdapterDelta.of("y", "", List.of(SiteDelta.dense("s", 1, 2, new double[] {3, 4},
        new double[] {3, 1})), List.of());
    assertArrayEquals(new double[] {2, 0}, Merge.method("linear").add(x, 1).add(y, 1).run().sites().get("s").bias(),
        1e-15);
    assertArrayEquals(new double[] {4, 0}, Merge.method("cat").add(x, 1).add(y, 1).run().sites().get("s").bias(),
        1e-15);
  }

  /** A random {@code [rows, cols]} matrix with orthonormal columns. */
  static double[] orthonormal(int rows, int cols, long seed) {
    Random r = new Random(seed);
    double[] m = new double[rows * cols];
    for (int i = 0; i < m.length; i++) {
      m[i] = r.nextGaussian();
    }
    return LowRank.qr(m, rows, cols)[0];
  }
}
