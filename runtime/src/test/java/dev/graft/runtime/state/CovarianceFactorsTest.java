package dev.graft.runtime.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.nio.FloatBuffer;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * CorDA's factors against PEFT's formulas run in NumPy float64 ({@code collect_eigens_for_layer}
 * and {@code corda_init} of PEFT 0.19, transcribed: damping loop, SVD of {@code w @ (C + λI)},
 * {@code V = (Vh @ inv).T}, {@code A = Vᵀ·sqrt(S/s)}, {@code B = U·sqrt(S)}), and the covariance
 * accumulator against a direct sum.
 */
class CovarianceFactorsTest {
  private static final int IN = 6;
  private static final int OUT = 5;
  private static final int T = 20;

  /** PEFT's {@code scaling · lora_B @ lora_A}, transposed to [in, out], rank 2, scaling 2, IPM. */
  private static final double[] IPM_DELTA = {0.23543730242363856, 0.5829262375657325, -0.44668202289574666,
      -0.03368350003620672, 0.11149512873007514, 0.2386653649357053, -0.3594522195711533, 0.2598877664299172,
      -0.29821992562516497, -0.32500075321740707, 0.49739107714128283, 0.03162754979332964, -0.04386989725818619,
      -0.4045644346283975, -0.31747440979000807, -0.41275768037769417, -0.25443524768294484, 0.2075270225342002,
      0.2723201620292415, 0.15828256143307903, -0.18033247239993577, -0.3361737097895857, 0.2594068320620388,
      0.05645293457347951, -0.034554477887962017, -0.07804608287120801, 0.342329851095866, -0.253555067458983,
      0.15998093693908783, 0.20988183540201813};
  /** The same in KPM (the two smallest triplets). */
  private static final double[] KPM_DELTA = {0.07654287043601689, -0.03311219175312918, 0.02592868304035309,
      -0.001476384677259859, 0.11492040374397224, 0.018905524337103477, -0.015363500250117824, -0.0013697966036774563,
      -0.004210020750794347, 0.033643173800823434, 0.03691355861276583, 0.005904160528371168, 0.036170124218343515,
      0.010994146442864993, 0.0394129043211473, 0.028043898869659915, -0.011720103357270212, 0.009945124815838537,
      -0.0003206386676574978, 0.04180347738797244, 0.03241161023936514, 0.017462905527630905, 0.045044149962691425,
      0.01622481780924726, 0.025619350464939825, 0.05717294465125644, -0.02087828598815776, 0.023537671564984142,
      0.0009601439307308585, 0.08301755152933353};

  private static float[] weight() {
    float[] w = new float[IN * OUT];
    for (int i = 0; i < IN; i++) {
      for (int o = 0; o < OUT; o++) {
        w[i * OUT + o] = (float) (0.5 * Math.sin(1 + 1.7 * i * i + 0.9 * o * o + 0.3 * i * o));
      }
    }
    return w;
  }

  private static double[] covariance() {
    double[] c = new double[IN * IN];
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < IN; i++) {
        for (int j = 0; j < IN; j++) {
          c[i * IN + j] += x(t, i) * x(t, j) / T;
        }
      }
    }
    return c;
  }

  private static double x(int t, int j) {
    return Math.sin(0.37 * t * t + 1.1 * j * j + 0.5 * t * j + j);
  }

  private static double[] product(CovarianceFactors f, int rank, double scale) {
    double[] d = new double[IN * OUT];
    for (int i = 0; i < IN; i++) {
      for (int o = 0; o < OUT; o++) {
        for (int k = 0; k < rank; k++) {
          d[i * OUT + o] += scale * f.a()[i * rank + k] * f.b()[k * OUT + o];
        }
      }
    }
    return d;
  }

  @Test
  void factorsMatchPeftsFormulasInBothModes() {
    // The weight is float32 here (as a host's), PEFT's reference float64 of the same formula: agreement ~1e-7.
    for (boolean smallest : new boolean[] {false, true}) {
      CovarianceFactors f = CovarianceFactors.of("site", weight(), IN, OUT, covariance(), 2, 2.0, smallest);
      double[] d = product(f, 2, 2.0);
      double[] expected = smallest ? KPM_DELTA : IPM_DELTA;
      double worst = 0;
      for (int i = 0; i < d.length; i++) {
        worst = Math.max(worst, Math.abs(d[i] - expected[i]));
      }
      System.out.printf("CorDA %s: max |s·A·B − PEFT's| = %.3g, S = %s, λ = %.6g%n", smallest ? "KPM" : "IPM", worst,
          java.util.Arrays.toString(f.singularValues()), f.damping());
      assertTrue(worst < 1e-6, (smallest ? "KPM" : "IPM") + " max difference " + worst);
      assertEquals(0.004818879871796546, f.damping(), 1e-9, "λ = 0.01·mean(diag C), accepted at the first try");
    }
    CovarianceFactors ipm = CovarianceFactors.of("site", weight(), IN, OUT, covariance(), 2, 2.0, false);
    assertEquals(0.706450004747526, ipm.singularValues()[0], 1e-6);
    assertEquals(0.4816398808295384, ipm.singularValues()[1], 1e-6);
  }

  /**
   * At full rank s·A·B is W itself, and C'·(s·A·B) reconstructs (Wᵀ·C')ᵀ, the matrix decomposed;
   * at rank r the part left out is the other singular values: ‖C'·(W − s·A·B)‖_F² = Σ S_tail².
   */
  @Test
  void factorsReconstructTheWeightTimesTheCovariance() {
    float[] w = weight();
    double[] c = covariance();
    int full = Math.min(IN, OUT);
    CovarianceFactors all = CovarianceFactors.of("site", w, IN, OUT, c, full, 0.5, false);
    double[] d = product(all, full, 0.5);
    double worst = 0;
    for (int i = 0; i < d.length; i++) {
      worst = Math.max(worst, Math.abs(d[i] - w[i]));
    }
    assertTrue(worst < 1e-6, "full rank: s·A·B = W, max error " + worst);
    double[] damped = c.clone();
    for (int i = 0; i < IN; i++) {
      damped[i * IN + i] += all.damping();
    }
    CovarianceFactors top = CovarianceFactors.of("site", w, IN, OUT, c, 2, 0.5, false);
    double[] residual = product(top, 2, 0.5);
    double norm = 0;
    for (int i = 0; i < IN; i++) {
      for (int o = 0; o < OUT; o++) {
        double s = 0;
        for (int k = 0; k < IN; k++) {
          s += damped[i * IN + k] * (w[k * OUT + o] - residual[k * OUT + o]);
        }
        norm += s * s;
      }
    }
    double tail = 0;
    for (int k = 2; k < full; k++) {
      tail += all.singularValues()[k] * all.singularValues()[k];
    }
    assertEquals(tail, norm, 1e-6 * Math.max(1, tail), "‖C'·(W − s·A·B)‖² is the squared singular values left out");
    assertTrue(tail > 1e-3, "the rank-2 part leaves something out: " + tail);
  }

  @Test
  void covarianceIsTheMeanOverSamplesOfTheScaledRowsAndLeavesPaddingOut() {
    // Two samples of 3 tokens of width 2; the second's last token is padding.
    float[] x = {1, 2, -3, 0.5f, 4, -1, /* sample 2 */ 2, 1, 1, -1, 9, 9};
    long[][] mask = {{1, 1, 1}, {1, 1, 0}};
    Calibration.Accumulator acc = new Calibration.Accumulator();
    acc.add("x", new long[] {2, 3, 2}, FloatBuffer.wrap(x), null, mask, "batch 1");
    Calibration c = acc.finish(new TreeSet<>(java.util.List.of("x")));
    double[] expected = new double[4];
    // sample 1: max entry 4; sample 2 (first two tokens): max entry 2.
    double[][][] rows = {{{1 / 4.0, 2 / 4.0}, {-3 / 4.0, 0.5 / 4.0}, {4 / 4.0, -1 / 4.0}}, {{1, 0.5}, {0.5, -0.5}}};
    for (double[][] sample : rows) {
      for (double[] r : sample) {
        for (int i = 0; i < 2; i++) {
          for (int j = 0; j < 2; j++) {
            expected[i * 2 + j] += r[i] * r[j] / 2;
          }
        }
      }
    }
    for (int i = 0; i < 4; i++) {
      assertEquals(expected[i], c.covariances().get("x")[i], 1e-12, "entry " + i);
    }
    assertEquals(2L, c.samples().get("x"));
  }

  @Test
  void unusableDataIsR341() {
    Calibration.Accumulator acc = new Calibration.Accumulator();
    GraftException e = assertThrows(GraftException.class,
        () -> acc.add("x", new long[] {1, 2, 2}, FloatBuffer.wrap(new float[] {0, 0, -1, 0}), null, null, "batch 1"));
    assertEquals(RuntimeErrorCode.CALIBRATION_DATA, e.getErrorCode());
    assertTrue(e.getMessage().contains("GRAFT-R341") && e.getMessage().contains("largest entry"), e.getMessage());
    GraftException none = assertThrows(GraftException.class,
        () -> new Calibration.Accumulator().finish(new TreeSet<>(java.util.List.of("x"))));
    assertTrue(none.getMessage().contains("no example"), none.getMessage());
    GraftException zero = assertThrows(GraftException.class,
        () -> CovarianceFactors.of("site", weight(), IN, OUT, new double[IN * IN], 2, 1, false));
    assertTrue(zero.getMessage().contains("mean diagonal"), zero.getMessage());
  }
}
