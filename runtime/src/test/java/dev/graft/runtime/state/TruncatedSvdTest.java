package dev.graft.runtime.state;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The truncated SVD behind PiSSA: a matrix built from known orthonormal factors and singular
 * values gives them back (up to sign) and its best rank-r approximation, in both orientations;
 * MiniLM-sized weights take well under a second.
 */
class TruncatedSvdTest {
  /** Orthonormal columns [n, k] by Gram–Schmidt on Gaussian vectors. */
  private static double[][] orthonormal(Random r, int n, int k) {
    double[][] q = new double[k][n];
    for (int c = 0; c < k; c++) {
      for (int i = 0; i < n; i++) {
        q[c][i] = r.nextGaussian();
      }
      for (int twice = 0; twice < 2; twice++) {
        for (int p = 0; p < c; p++) {
          double dot = 0;
          for (int i = 0; i < n; i++) {
            dot += q[c][i] * q[p][i];
          }
          for (int i = 0; i < n; i++) {
            q[c][i] -= dot * q[p][i];
          }
        }
      }
      double norm = 0;
      for (int i = 0; i < n; i++) {
        norm += q[c][i] * q[c][i];
      }
      for (int i = 0; i < n; i++) {
        q[c][i] /= Math.sqrt(norm);
      }
    }
    return q;
  }

  private static void check(int rows, int cols, int rank) {
    Random r = new Random(rows * 31L + cols);
    int full = Math.min(rows, cols);
    double[][] u = orthonormal(r, rows, full);
    double[][] v = orthonormal(r, cols, full);
    double[] sigma = new double[full];
    for (int c = 0; c < full; c++) {
      sigma[c] = 10 * Math.pow(0.8, c); // distinct, decreasing
    }
    float[] a = new float[rows * cols];
    double[] exact = new double[rows * cols];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        double x = 0;
        for (int c = 0; c < full; c++) {
          x += u[c][i] * sigma[c] * v[c][j];
        }
        a[i * cols + j] = (float) x;
        exact[i * cols + j] = a[i * cols + j];
      }
    }
    TruncatedSvd svd = TruncatedSvd.of(a, rows, cols, rank);
    for (int c = 0; c < rank; c++) {
      assertEquals(sigma[c], svd.s()[c], 1e-5 * sigma[0], "σ" + c);
      // Vectors equal the construction's up to sign.
      double dotU = 0;
      double dotV = 0;
      for (int i = 0; i < rows; i++) {
        dotU += svd.u()[i * rank + c] * u[c][i];
      }
      for (int j = 0; j < cols; j++) {
        dotV += svd.v()[j * rank + c] * v[c][j];
      }
      assertEquals(1, Math.abs(dotU), 1e-4, "u" + c);
      assertEquals(Math.signum(dotU), Math.signum(dotV), "u and v of " + c + " share the sign");
      assertEquals(1, Math.abs(dotV), 1e-4, "v" + c);
    }
    // U_r·S_r·V_rᵀ is the rank-r truncation of the float matrix.
    double worst = 0;
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        double got = 0;
        double want = 0;
        for (int c = 0; c < rank; c++) {
          got += svd.u()[i * rank + c] * svd.s()[c] * svd.v()[j * rank + c];
          want += u[c][i] * sigma[c] * v[c][j];
        }
        worst = Math.max(worst, Math.abs(got - want));
      }
    }
    assertTrue(worst < 1e-5, "rank-" + rank + " reconstruction of [" + rows + ", " + cols + "] off by " + worst);
  }

  @Test
  void recoversKnownFactorsOfWideTallAndSquareMatrices() {
    check(12, 30, 4);
    check(30, 12, 4);
    check(16, 16, 16);
    check(9, 5, 1);
  }

  @Test
  void fullRankReconstructsTheMatrix() {
    Random r = new Random(3);
    float[] a = new float[7 * 11];
    for (int i = 0; i < a.length; i++) {
      a[i] = (float) r.nextGaussian();
    }
    TruncatedSvd svd = TruncatedSvd.of(a, 7, 11, 7);
    for (int i = 0; i < 7; i++) {
      for (int j = 0; j < 11; j++) {
        double x = 0;
        for (int c = 0; c < 7; c++) {
          x += svd.u()[i * 7 + c] * svd.s()[c] * svd.v()[j * 7 + c];
        }
        assertEquals(a[i * 11 + j], x, 1e-9, "a[" + i + ", " + j + "]");
      }
    }
    assertThrows(IllegalArgumentException.class, () -> TruncatedSvd.of(a, 7, 11, 8));
  }

  @Test
  void miniLmSizedWeightsTakeWellUnderASecond() {
    Random r = new Random(4);
    for (int[] shape : new int[][] {{384, 384}, {384, 1536}, {1536, 384}}) {
      float[] a = new float[shape[0] * shape[1]];
      for (int i = 0; i < a.length; i++) {
        a[i] = (float) (r.nextGaussian() / Math.sqrt(shape[0]));
      }
      // The best of three runs (after a warm-up), since the build machine's cores are shared.
      TruncatedSvd svd = TruncatedSvd.of(a, shape[0], shape[1], 8);
      double seconds = Double.POSITIVE_INFINITY;
      for (int run = 0; run < 3; run++) {
        long start = System.nanoTime();
        svd = TruncatedSvd.of(a, shape[0], shape[1], 8);
        seconds = Math.min(seconds, (System.nanoTime() - start) / 1e9);
      }
      System.out.printf("TruncatedSvd [%d, %d] rank 8: %.3f s%n", shape[0], shape[1], seconds);
      assertTrue(seconds < 1, "[" + shape[0] + ", " + shape[1] + "] took " + seconds + " s");
      assertTrue(svd.s()[0] >= svd.s()[7] && svd.s()[7] > 0);
    }
  }
}
