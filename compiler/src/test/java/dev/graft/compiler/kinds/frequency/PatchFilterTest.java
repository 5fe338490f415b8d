package dev.graft.compiler.kinds.frequency;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * The filter matrix against the filter itself: a 2-D DFT of the grid in plain complex arithmetic,
 * the mask applied to the spectrum, the inverse DFT, on random grids.
 */
class PatchFilterTest {
  /**
   * The reference implementation's box ({@code VisionXLab/Earth-Adapter}, {@code decompose_fft}),
   * restated: in the fftshifted spectrum (frequency k of an axis of n at place (k + ⌊n/2⌋) mod n)
   * the slice {@code [⌊n/2⌋ − c, ⌊n/2⌋ + c)} of each axis is 1, c = ⌊min(h, w)·cutoff / 2⌋.
   * Not symmetric: the real part is taken after the inverse transform.
   */
  private static boolean inReferenceBox(PatchFilter f, int ky, int kx, double cutoff) {
    int c = (int) Math.floor(Math.min(f.height(), f.width()) * cutoff / 2);
    int sy = (ky + f.height() / 2) % f.height();
    int sx = (kx + f.width() / 2) % f.width();
    return sy >= f.height() / 2 - c && sy < f.height() / 2 + c && sx >= f.width() / 2 - c && sx < f.width() / 2 + c;
  }

  /** low = IDFT2(M ⊙ DFT2(x)) computed directly (O(N²) sums of complex exponentials), real part. */
  private static double[] directLowPass(PatchFilter f, double[] x, double cutoff, String mask) {
    int h = f.height();
    int w = f.width();
    double[] re = new double[h * w];
    double[] im = new double[h * w];
    for (int ky = 0; ky < h; ky++) {
      for (int kx = 0; kx < w; kx++) {
        double sr = 0;
        double si = 0;
        for (int y = 0; y < h; y++) {
          for (int xx = 0; xx < w; xx++) {
            double a = -2 * Math.PI * ((double) ky * y / h + (double) kx * xx / w);
            sr += x[y * w + xx] * Math.cos(a);
            si += x[y * w + xx] * Math.sin(a);
          }
        }
        boolean keep = mask.equals("box") ? inReferenceBox(f, ky, kx, cutoff) : f.weight(ky, kx, cutoff, mask) == 1;
        re[ky * w + kx] = keep ? sr : 0;
        im[ky * w + kx] = keep ? si : 0;
      }
    }
    double[] out = new double[h * w];
    double maxImag = 0;
    for (int y = 0; y < h; y++) {
      for (int xx = 0; xx < w; xx++) {
        double sr = 0;
        double si = 0;
        for (int ky = 0; ky < h; ky++) {
          for (int kx = 0; kx < w; kx++) {
            double a = 2 * Math.PI * ((double) ky * y / h + (double) kx * xx / w);
            double c = Math.cos(a);
            double s = Math.sin(a);
            sr += re[ky * w + kx] * c - im[ky * w + kx] * s;
            si += re[ky * w + kx] * s + im[ky * w + kx] * c;
          }
        }
        out[y * w + xx] = sr / (h * w);
        maxImag = Math.max(maxImag, Math.abs(si / (h * w)));
      }
    }
    if (!mask.equals("box")) {
      assertTrue(maxImag < 1e-9, "a symmetric mask gives a real result; imaginary part " + maxImag);
    }
    return out;
  }

  @ParameterizedTest
  @CsvSource({"4, 4, 0.5, radial", "4, 4, 0.5, square", "5, 3, 0.7, radial", "6, 8, 0.3, square", "7, 7, 1.0, radial",
      "2, 2, 0.0, radial", "4, 4, 0.5, box", "6, 6, 0.7, box", "5, 5, 0.9, box", "8, 6, 0.6, box", "7, 4, 1.0, box",
      "32, 32, 0.3, box"})
  void matrixEqualsTheDirectDftLowPass(int h, int w, double cutoff, String mask) {
    PatchFilter f = new PatchFilter(1, h, w);
    int n = f.patches();
    double[] l = f.lowPass(cutoff, mask);
    Random random = new Random(31L * h + w);
    double worst = 0;
    for (int trial = 0; trial < 5; trial++) {
      double[] x = new double[n];
      for (int i = 0; i < n; i++) {
        x[i] = random.nextGaussian();
      }
      double[] want = directLowPass(f, x, cutoff, mask);
      for (int p = 0; p < n; p++) {
        double got = 0;
        for (int q = 0; q < n; q++) {
          got += l[p * n + q] * x[q];
        }
        worst = Math.max(worst, Math.abs(got - want[p]));
      }
    }
    assertTrue(worst < 1e-9, h + "×" + w + " cutoff " + cutoff + " " + mask + ": max error " + worst);
    System.out.printf("PatchFilter %d×%d cutoff %.2f %s: %d of %d frequencies kept, max error vs direct DFT %.2e%n",
        h, w, cutoff, mask, f.kept(cutoff, mask), n, worst);
  }

  @Test
  void tokenMatrixPassesExtraTokensAndSplitsTheGrid() {
    PatchFilter f = new PatchFilter(1, 4, 4);
    double[] low = f.tokenMatrix(0.5, "radial", false);
    double[] high = f.tokenMatrix(0.5, "radial", true);
    int t = f.tokens();
    assertEquals(17, t);
    for (int i = 0; i < t; i++) {
      for (int j = 0; j < t; j++) {
        double sum = low[i * t + j] + high[i * t + j];
        double expected = i == j ? (i == 0 ? 2 : 1) : 0;
        assertEquals(expected, sum, 1e-12, "low + high is the identity on the grid, each the identity on the class token");
      }
    }
    // A constant grid is all low frequency: the low-pass keeps it, the high-pass removes it.
    for (int p = 1; p < t; p++) {
      double rowLow = 0;
      for (int q = 1; q < t; q++) {
        rowLow += low[p * t + q];
      }
      assertEquals(1, rowLow, 1e-12);
    }
  }

  @Test
  void theBoxHalvesTheFrequencyItKeepsOnOneSideOnly() {
    // 6×6, cutoff 0.7: c = ⌊6·0.7/2⌋ = 2, signed frequencies −2..1 per axis kept.
    PatchFilter f = new PatchFilter(0, 6, 6);
    assertEquals(2, f.boxHalfWidth(0.7));
    assertEquals(1, f.weight(0, 0, 0.7, "box"));
    assertEquals(1, f.weight(1, 5, 0.7, "box"), "(1, −1): both kept");
    assertEquals(0.5, f.weight(4, 0, 0.7, "box"), "−2 kept, +2 not: the real part halves it");
    assertEquals(0.5, f.weight(2, 0, 0.7, "box"));
    assertEquals(0.5, f.weight(4, 4, 0.7, "box"), "(−2, −2) kept, (2, 2) not");
    assertEquals(0, f.weight(2, 4, 0.7, "box"), "(2, −2) and (−2, 2) both outside");
    assertEquals(0, f.weight(3, 0, 0.7, "box"));
    assertEquals(0, new PatchFilter(0, 4, 4).kept(0.3, "box"), "c = ⌊4·0.3/2⌋ = 0 keeps nothing");
    assertTrue(new PatchFilter(0, 4, 4).keepsAll(1.0, "box"), "c = 2 = n/2 keeps the whole even axis");
    assertTrue(!new PatchFilter(0, 5, 5).keepsAll(0.9, "box"), "c = 2 on 5 misses +2");
  }

  @Test
  void gridsAreInferredFromTheTokenCount() {
    assertEquals(Optional.of(new PatchFilter(1, 4, 4)), PatchFilter.of(17, -1, 0, 0));
    assertEquals(Optional.of(new PatchFilter(0, 4, 4)), PatchFilter.of(16, -1, 0, 0));
    assertEquals(Optional.of(new PatchFilter(1, 2, 8)), PatchFilter.of(17, -1, 2, 0));
    assertEquals(Optional.of(new PatchFilter(0, 3, 5)), PatchFilter.of(15, 0, 0, 5));
    assertEquals(Optional.of(new PatchFilter(2, 3, 3)), PatchFilter.of(11, 2, 0, 0));
    assertEquals(Optional.empty(), PatchFilter.of(12, -1, 0, 0), "12 and 11 are not squares");
    assertEquals(Optional.empty(), PatchFilter.of(17, -1, 3, 3));
    assertEquals(Optional.empty(), PatchFilter.of(0, -1, 0, 0));
  }
}
