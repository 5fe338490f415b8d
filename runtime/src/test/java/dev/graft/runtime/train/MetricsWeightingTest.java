package dev.graft.runtime.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The MWA-style weights {@code w_i = m_i^p / Σ m_j^p}, checked against values computed by hand. */
class MetricsWeightingTest {
  private static KeptCheckpoints.Checkpoint at(long step, double loss, Double metric) {
    return new KeptCheckpoints.Checkpoint(step, 1, Path.of(KeptCheckpoints.fileName(step)), loss, 10, metric);
  }

  private static final List<KeptCheckpoints.Checkpoint> THREE =
      List.of(at(10, 0.5, 0.6), at(20, 0.25, 0.8), at(40, 0.2, 0.9));

  @Test
  void exponentZeroIsTheUniformAverageForEveryMetric() {
    for (MetricsWeighting.Metric m : MetricsWeighting.Metric.values()) {
      assertArrayEquals(new double[] {1 / 3.0, 1 / 3.0, 1 / 3.0}, new MetricsWeighting(m, 0).weights(THREE), 1e-15, m.name());
    }
    assertArrayEquals(new double[] {0.5, 0.5}, MetricsWeighting.uniform().weights(THREE.subList(0, 2)), 1e-15);
    assertEquals("uniform", MetricsWeighting.loss(0).label());
  }

  @Test
  void lossWeightingTakesTheInverseLossToThePowerP() {
    // m = 1/loss = 2, 4, 5; p = 1: 2/11, 4/11, 5/11; p = 2: 4/45, 16/45, 25/45; p = 0.5: sqrt.
    assertArrayEquals(new double[] {2 / 11.0, 4 / 11.0, 5 / 11.0}, MetricsWeighting.loss(1).weights(THREE), 1e-15);
    assertArrayEquals(new double[] {4 / 45.0, 16 / 45.0, 25 / 45.0}, MetricsWeighting.loss(2).weights(THREE), 1e-15);
    double s = Math.sqrt(2) + 2 + Math.sqrt(5);
    assertArrayEquals(new double[] {Math.sqrt(2) / s, 2 / s, Math.sqrt(5) / s},
        MetricsWeighting.loss(0.5).weights(THREE), 1e-15);
  }

  @Test
  void stepAndHeldOutWeightingTakeTheirMetricToThePowerP() {
    assertArrayEquals(new double[] {10 / 70.0, 20 / 70.0, 40 / 70.0}, MetricsWeighting.step(1).weights(THREE), 1e-15);
    assertArrayEquals(new double[] {100 / 2100.0, 400 / 2100.0, 1600 / 2100.0},
        MetricsWeighting.step(2).weights(THREE), 1e-15);
    assertArrayEquals(new double[] {0.6 / 2.3, 0.8 / 2.3, 0.9 / 2.3}, MetricsWeighting.heldOut(1).weights(THREE), 1e-15);
  }

  @Test
  void weightsAreNormalizedAndDoNotOverflow() {
    for (double p : new double[] {0, 0.5, 1, 2, 50, 400}) {
      for (MetricsWeighting.Metric m : MetricsWeighting.Metric.values()) {
        double[] w = new MetricsWeighting(m, p).weights(THREE);
        assertEquals(1, Arrays.stream(w).sum(), 1e-12, m + " p=" + p);
        assertTrue(Arrays.stream(w).allMatch(x -> x >= 0 && Double.isFinite(x)), Arrays.toString(w));
      }
    }
    // 1e6^400 overflows a double; the weights in log space do not: all but the last underflow to 0.
    List<KeptCheckpoints.Checkpoint> late = List.of(at(1_000_000, 1, null), at(2_000_000, 1, null));
    double[] w = MetricsWeighting.step(400).weights(late);
    assertArrayEquals(new double[] {0, 1}, w, 1e-15);
  }

  @Test
  void aMetricThatCannotWeightIsGraftR142() {
    GraftException zero = assertThrows(GraftException.class,
        () -> MetricsWeighting.loss(1).weights(List.of(at(1, 0, null), at(2, 0.5, null))));
    assertEquals(RuntimeErrorCode.CHECKPOINT_WEIGHTS, zero.getErrorCode());
    assertTrue(zero.getMessage().startsWith("[GRAFT-R142]") && zero.getMessage().contains("training loss 0.0"),
        zero.getMessage());
    GraftException none = assertThrows(GraftException.class,
        () -> MetricsWeighting.heldOut(1).weights(List.of(at(1, 0.3, null))));
    assertTrue(none.getMessage().contains("no held-out metric"), none.getMessage());
    GraftException negative = assertThrows(GraftException.class,
        () -> MetricsWeighting.heldOut(2).weights(List.of(at(1, 0.3, -0.5))));
    assertTrue(negative.getMessage().contains("finite and > 0"), negative.getMessage());
    for (double p : new double[] {-1, Double.NaN, Double.POSITIVE_INFINITY}) {
      assertEquals("GRAFT-R142", assertThrows(GraftException.class, () -> MetricsWeighting.step(p)).getCode());
    }
    assertEquals("GRAFT-R142", assertThrows(GraftException.class,
        () -> MetricsWeighting.uniform().weights(List.of())).getCode());
  }
}
