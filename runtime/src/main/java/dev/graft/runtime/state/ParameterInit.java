package dev.graft.runtime.state;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.session.ElementType;
import dev.graft.runtime.session.HostWeights;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import java.lang.ref.WeakReference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Initial values of parameters, as their manifest entries ask: seeded random draws, constants,
 * or values computed from the host's weights (copies, column norms, principal factors).
 */
public final class ParameterInit {
  private ParameterInit() {}

  /**
   * The initial values of {@code p} ({@code size} elements) for {@code seed}; host-derived
   * initializers read {@code host}.
   */
  public static float[] initialValues(Parameter p, int size, long seed, HostWeights host) {
    float[] v = new float[size];
    Random r = new Random(seed * 0x9E3779B97F4A7C15L + p.getName().hashCode());
    switch (p.getInit()) {
      case ZEROS -> {}
      case ONES -> Arrays.fill(v, 1f);
      case CONSTANT -> Arrays.fill(v, (float) p.getInitScale());
      case KAIMING_UNIFORM -> {
        if (!(p.getInitScale() > 0)) {
          throw new FormatException(p.getName(), "KAIMING_UNIFORM needs init_scale (the fan-in) > 0, got " + p.getInitScale());
        }
        uniform(v, r, 1.0 / Math.sqrt(p.getInitScale()));
      }
      case UNIFORM -> uniform(v, r, p.getInitScale());
      case IDENTITY -> {
        int n = (int) Math.round(Math.sqrt(size));
        if (p.getShapeCount() != 2 || p.getShape(0) != p.getShape(1)) {
          throw new FormatException(p.getName(), "IDENTITY needs a square [n, n] parameter, got " + p.getShapeList());
        }
        Arrays.fill(v, (float) p.getInitScale());
        for (int i = 0; i < n; i++) {
          v[i * n + i] = 1f;
        }
      }
      case NORMAL -> {
        for (int i = 0; i < size; i++) {
          v[i] = (float) (r.nextGaussian() * p.getInitScale());
        }
      }
      case HOST_COPY -> {
        float[] w = hostValues(p, host);
        if (w.length != size) {
          throw new FormatException(p.getName(), "HOST_COPY of '" + p.getInitSource() + "' has " + w.length
              + " values, the parameter " + size);
        }
        System.arraycopy(w, 0, v, 0, size);
      }
      case HOST_COLUMN_NORM -> {
        HostWeights.Weight w = hostWeight(p, host);
        if (w.dims().length != 2 || w.dims()[1] != size) {
          throw new FormatException(p.getName(), "HOST_COLUMN_NORM needs a 2-D host weight [in, " + size + "], '"
              + p.getInitSource() + "' is " + Arrays.toString(w.dims()));
        }
        float[] m = hostValues(p, host);
        int in = (int) w.dims()[0];
        double[] sq = new double[size];
        for (int i = 0; i < in; i++) {
          for (int j = 0; j < size; j++) {
            double x = m[i * size + j];
            sq[j] += x * x;
          }
        }
        for (int j = 0; j < size; j++) {
          v[j] = (float) Math.sqrt(sq[j]);
        }
      }
      case PISSA_A, PISSA_B -> pissa(p, size, host, v);
      // Zeros until AdapterModel.calibrate sets them (see Calibration); training refuses them before.
      case CORDA_A, CORDA_B -> {}
      // Filled from its quantized parameter by ParameterState.
      case QUANTIZE_STATS -> {}
      case HOST_ROWS -> {
        HostWeights.Weight w = hostWeight(p, host);
        if (w.dims().length != 2 || w.dims()[0] < 1 || size % w.dims()[1] != 0) {
          throw new FormatException(p.getName(), "HOST_ROWS needs a 2-D host weight [rows, width] whose width divides "
              + size + ", '" + p.getInitSource() + "' is " + Arrays.toString(w.dims()));
        }
        float[] table = hostValues(p, host);
        int width = (int) w.dims()[1];
        for (int row = 0; row < size / width; row++) {
          int from = r.nextInt((int) w.dims()[0]);
          System.arraycopy(table, from * width, v, row * width, width);
        }
      }
      default -> throw new FormatException(
          p.getName(), "parameter has no known initializer (" + p.getInit() + "); the manifest must set init");
    }
    return v;
  }

  /**
   * PiSSA's factors of host weight W {@code [in, out] = U·S·Vᵀ} at the parameter's rank r, with
   * s = init_scale (the LoRA scaling): A = U_r·sqrt(S_r/s) {@code [in, r]}, B = sqrt(S_r/s)·V_rᵀ
   * {@code [r, out]}, so that {@code s·A·B} is W's best rank-r approximation.
   */
  private static void pissa(Parameter p, int size, HostWeights host, float[] v) {
    HostWeights.Weight w = hostWeight(p, host);
    boolean isA = p.getInit() == Init.PISSA_A;
    if (w.dims().length != 2 || p.getShapeCount() != 2
        || (isA ? p.getShape(0) != w.dims()[0] : p.getShape(1) != w.dims()[1])
        || p.getShape(isA ? 1 : 0) > Math.min(w.dims()[0], w.dims()[1])) {
      throw new FormatException(p.getName(), p.getInit() + " of shape " + p.getShapeList() + " does not fit host weight '"
          + p.getInitSource() + "' " + Arrays.toString(w.dims()));
    }
    if (!(p.getInitScale() > 0)) {
      throw new FormatException(p.getName(), p.getInit() + " needs init_scale (the LoRA scaling) > 0, got " + p.getInitScale());
    }
    int rows = (int) w.dims()[0];
    int cols = (int) w.dims()[1];
    int rank = (int) p.getShape(isA ? 1 : 0);
    TruncatedSvd svd = principal(p, host, w, rank);
    for (int c = 0; c < rank; c++) {
      double root = Math.sqrt(svd.s()[c] / p.getInitScale());
      if (isA) {
        for (int i = 0; i < rows; i++) {
          v[i * rank + c] = (float) (svd.u()[i * rank + c] * root);
        }
      } else {
        for (int j = 0; j < cols; j++) {
          v[c * cols + j] = (float) (root * svd.v()[j * rank + c]);
        }
      }
    }
  }

  /** The last decomposition, so that A, B and PiSSA's frozen A0, B0 of one site share one. */
  private static final AtomicReference<Principal> LAST = new AtomicReference<>();

  private record Principal(WeakReference<HostWeights.Weight> weight, int rank, TruncatedSvd svd) {}

  private static TruncatedSvd principal(Parameter p, HostWeights host, HostWeights.Weight w, int rank) {
    Principal last = LAST.get();
    if (last != null && last.weight().get() == w && last.rank() == rank) {
      return last.svd();
    }
    TruncatedSvd svd = TruncatedSvd.of(hostValues(p, host), (int) w.dims()[0], (int) w.dims()[1], rank);
    LAST.set(new Principal(new WeakReference<>(w), rank, svd));
    return svd;
  }

  private static void uniform(float[] v, Random r, double bound) {
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) ((r.nextDouble() * 2 - 1) * bound);
    }
  }

  /** The host weight a host-derived initializer reads. */
  static HostWeights.Weight hostWeight(Parameter p, HostWeights host) {
    HostWeights.Weight w = host.weights().get(p.getInitSource());
    if (w == null) {
      throw new FormatException(p.getName(), p.getInit() + " reads host initializer '" + p.getInitSource()
          + "', which was not loaded from " + host.source() + "; is it in the manifest's host_initializers?");
    }
    return w;
  }

  /** The values of the host weight a host-derived initializer reads, as floats (row-major). */
  static float[] hostValues(Parameter p, HostWeights host) {
    HostWeights.Weight w = hostWeight(p, host);
    ByteBuffer b = w.data().duplicate().order(ByteOrder.LITTLE_ENDIAN);
    b.clear();
    ElementType type = ElementType.ofOnnx(w.dataType());
    if (type == ElementType.FLOAT) {
      float[] out = new float[b.remaining() / 4];
      b.asFloatBuffer().get(out);
      return out;
    }
    if (type == ElementType.DOUBLE) {
      double[] d = new double[b.remaining() / 8];
      b.asDoubleBuffer().get(d);
      float[] out = new float[d.length];
      for (int i = 0; i < d.length; i++) {
        out[i] = (float) d[i];
      }
      return out;
    }
    throw new FormatException(p.getName(), "host initializer '" + p.getInitSource() + "' is "
        + ElementType.describe(w.dataType()) + "; initializing from it needs float32 or float64");
  }
}
