package dev.graft.compiler.kinds.frequency;

import java.util.List;
import java.util.OptionalInt;

/**
 * The fixed low-pass filter of an {@code h×w} patch grid as one real matrix: {@code low =
 * IDFT2(M ⊙ DFT2(x))} over the grid, for a frequency mask M that keeps the frequencies of
 * normalized radius at most {@code cutoff} (or the reference's centred box). The filter is linear and maps real grids to real grids,
 * so it is a constant {@code [N, N]} matrix {@code L} ({@code N = h·w}, tokens in row-major grid
 * order) applied over the token axis; the high-pass part is {@code x − L·x}.
 *
 * <p>A frequency {@code (ky, kx)} has signed index {@code fy = min(ky, h − ky)} (likewise {@code
 * fx}) and normalized coordinates {@code (2·fy/h, 2·fx/w)} in {@code [0, 1]}; {@code radial} keeps
 * it when {@code √((2fy/h)² + (2fx/w)²) ≤ cutoff}, {@code square} when {@code max(2fy/h, 2fx/w) ≤
 * cutoff}. {@code box} is the mask of the reference implementation ({@code VisionXLab/Earth-Adapter},
 * {@code earth_adapter.decompose_fft}): in the centred ({@code fftshift}ed) spectrum it keeps the
 * box of signed frequencies {@code −c .. c − 1} on each axis, {@code c = ⌊min(h, w)·cutoff / 2⌋},
 * and takes the real part of the inverse transform. That box is not symmetric (it keeps −c, not
 * +c); the real part of {@code IDFT2(M ⊙ X)} of a real grid is {@code IDFT2(M_s ⊙ X)} with the
 * symmetric {@code M_s(k) = (M(k) + M(−k)) / 2}, so such a frequency has weight ½. With every
 * mask symmetric (weights 0, ½ or 1) the imaginary parts cancel and
 * <pre>
 *   L[p, q] = (1/N) Σ_k M(k) · cos(2π·(ky·(py − qy)/h + kx·(px − qx)/w))
 * </pre>
 * which is what {@link #lowPass} computes (in double precision); the reference's high part,
 * the real part of {@code IDFT2((1 − M) ⊙ X)}, is {@code x − L·x}.
 *
 * @param extraTokens tokens before the grid (a class token) that pass unfiltered
 * @param height grid rows h
 * @param width grid columns w
 */
public record PatchFilter(int extraTokens, int height, int width) {
  /** The mask shapes. */
  public static final List<String> MASKS = List.of("box", "radial", "square");

  /** The grid's token count {@code h·w}. */
  public int patches() {
    return height * width;
  }

  /** The whole token count {@code extraTokens + h·w}. */
  public int tokens() {
    return extraTokens + patches();
  }

  /**
   * The grid of {@code tokens} tokens: with {@code extra} given (≥ 0) the rest must be a grid,
   * otherwise {@code 1 + h·w} (a class token) is tried before {@code h·w}; with {@code height} or
   * {@code width} given (> 0) the grid must have it, otherwise it is square. Empty where no grid fits.
   */
  public static java.util.Optional<PatchFilter> of(long tokens, int extra, int height, int width) {
    int[] extras = extra >= 0 ? new int[] {extra} : new int[] {1, 0};
    for (int e : extras) {
      long n = tokens - e;
      if (n < 1) {
        continue;
      }
      OptionalInt h = rows(n, height, width);
      if (h.isPresent()) {
        return java.util.Optional.of(new PatchFilter(e, h.getAsInt(), (int) (n / h.getAsInt())));
      }
    }
    return java.util.Optional.empty();
  }

  private static OptionalInt rows(long n, int height, int width) {
    if (height > 0 && width > 0) {
      return (long) height * width == n ? OptionalInt.of(height) : OptionalInt.empty();
    } else if (height > 0) {
      return n % height == 0 ? OptionalInt.of(height) : OptionalInt.empty();
    } else if (width > 0) {
      return n % width == 0 ? OptionalInt.of((int) (n / width)) : OptionalInt.empty();
    }
    long side = Math.round(Math.sqrt((double) n));
    return side * side == n ? OptionalInt.of((int) side) : OptionalInt.empty();
  }

  /** The weight of frequency {@code (ky, kx)} in the (symmetrized) mask: 0, ½ or 1. */
  public double weight(int ky, int kx, double cutoff, String mask) {
    if (mask.equals("box")) {
      int c = boxHalfWidth(cutoff);
      return (inBox(ky, height, c) * inBox(kx, width, c) + inBox(height - ky, height, c) * inBox(width - kx, width, c)) / 2;
    }
    double y = 2.0 * Math.min(ky, height - ky) / height;
    double x = 2.0 * Math.min(kx, width - kx) / width;
    return switch (mask) {
      case "radial" -> Math.sqrt(y * y + x * x) <= cutoff + 1e-12 ? 1 : 0;
      case "square" -> Math.max(y, x) <= cutoff + 1e-12 ? 1 : 0;
      default -> throw new IllegalArgumentException("unknown mask '" + mask + "'; the masks are " + MASKS);
    };
  }

  /** The box mask's {@code c = ⌊min(h, w)·cutoff / 2⌋}: it keeps signed frequencies −c .. c − 1 per axis. */
  public int boxHalfWidth(double cutoff) {
    return (int) Math.floor(Math.min(height, width) * cutoff / 2);
  }

  /**
   * 1 where index {@code k} (mod {@code n}) of an axis of {@code n} lies in the box: its place in
   * the centred spectrum, {@code (k + ⌊n/2⌋) mod n}, in {@code ⌊n/2⌋ − c .. ⌊n/2⌋ + c − 1} (clipped to the axis).
   */
  private static double inBox(int k, int n, int c) {
    int centred = Math.floorMod(k + n / 2, n);
    return centred >= n / 2 - c && centred <= n / 2 + c - 1 ? 1 : 0;
  }

  /** How many of the grid's {@code h·w} frequencies have a non-zero weight. */
  public int kept(double cutoff, String mask) {
    int count = 0;
    for (int ky = 0; ky < height; ky++) {
      for (int kx = 0; kx < width; kx++) {
        count += weight(ky, kx, cutoff, mask) > 0 ? 1 : 0;
      }
    }
    return count;
  }

  /** Whether every frequency has weight 1 (then the high part is zero). */
  public boolean keepsAll(double cutoff, String mask) {
    for (int ky = 0; ky < height; ky++) {
      for (int kx = 0; kx < width; kx++) {
        if (weight(ky, kx, cutoff, mask) < 1) {
          return false;
        }
      }
    }
    return true;
  }

  /** The low-pass matrix {@code L [N, N]}, row-major: {@code low[p] = Σ_q L[p, q]·x[q]}. */
  public double[] lowPass(double cutoff, String mask) {
    int n = patches();
    double[] l = new double[n * n];
    for (int ky = 0; ky < height; ky++) {
      for (int kx = 0; kx < width; kx++) {
        double m = weight(ky, kx, cutoff, mask);
        if (m == 0) {
          continue;
        }
        for (int p = 0; p < n; p++) {
          for (int q = 0; q < n; q++) {
            double phase = 2 * Math.PI * ((double) ky * (p / width - q / width) / height
                + (double) kx * (p % width - q % width) / width);
            l[p * n + q] += m * Math.cos(phase) / n;
          }
        }
      }
    }
    return l;
  }

  /**
   * The filter over all tokens, {@code [T, T]}: the identity on the extra tokens and {@code L}
   * (low) or {@code I − L} (high) on the grid, so {@code MatMul(F, x [.., T, D])} filters the grid
   * and passes the extra tokens unfiltered.
   */
  public double[] tokenMatrix(double cutoff, String mask, boolean high) {
    int t = tokens();
    int n = patches();
    double[] l = lowPass(cutoff, mask);
    double[] f = new double[t * t];
    for (int i = 0; i < extraTokens; i++) {
      f[i * t + i] = 1;
    }
    for (int p = 0; p < n; p++) {
      for (int q = 0; q < n; q++) {
        double v = l[p * n + q];
        f[(extraTokens + p) * t + extraTokens + q] = high ? (p == q ? 1 : 0) - v : v;
      }
    }
    return f;
  }
}
