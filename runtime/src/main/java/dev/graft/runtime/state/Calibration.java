package dev.graft.runtime.state;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.session.HostWeights;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * The input covariances a calibration pass collects, and the parameters initialized from them
 * ({@link Init#CORDA_A}, {@link Init#CORDA_B}: CorDA's factors, see {@link CovarianceFactors}).
 *
 * <p>Each calibration example is one sample, as PEFT's CorDA hook takes one sequence per forward
 * call: its rows X (its tokens, those the attention mask keeps when the host has one) are divided
 * by {@code |max X|} (the largest entry, then its magnitude, as PEFT does), and {@code C} is the
 * mean over samples of {@code XᵀX}, summed in float64.
 *
 * @param covariances covariance input name → the mean covariance {@code [width, width]} row-major
 * @param samples covariance input name → the samples (examples) it was collected over
 */
public record Calibration(SortedMap<String, double[]> covariances, SortedMap<String, Long> samples) {

  /** The inference-graph tensors whose covariance {@code manifest}'s parameters need, sorted; empty when none. */
  public static SortedSet<String> inputs(Manifest manifest) {
    SortedSet<String> out = new TreeSet<>();
    for (Parameter p : manifest.getParametersList()) {
      if (calibrated(p)) {
        out.add(p.getCovarianceInput());
      }
    }
    return out;
  }

  /** Whether {@code p} is set by calibration rather than at initialization. */
  public static boolean calibrated(Parameter p) {
    return p.getInit() == Init.CORDA_A || p.getInit() == Init.CORDA_B;
  }

  /** The parameters of {@code store} that calibration sets and that are still all zero (not calibrated), sorted. */
  public static List<String> uncalibrated(ParameterStore store) {
    List<String> out = new ArrayList<>();
    for (Parameter p : store.getManifest().getParametersList()) {
      if (calibrated(p)) {
        boolean zero = true;
        for (float v : store.getParameter(p.getName())) {
          if (v != 0) {
            zero = false;
            break;
          }
        }
        if (zero) {
          out.add(p.getName());
        }
      }
    }
    return out;
  }

  /** Sums of {@code XᵀX} per covariance input while a calibration pass runs. */
  public static final class Accumulator {
    private final Map<String, double[]> sums = new TreeMap<>();
    private final Map<String, Integer> widths = new HashMap<>();
    private final Map<String, Long> counts = new TreeMap<>();

    /**
     * Adds the samples of one run's value of {@code input}: shape {@code [batch, …, width]} in
     * {@code floats} (or {@code doubles}), one sample per batch row; {@code mask} {@code [batch][sequence]}
     * keeps the rows of a {@code [batch, sequence, width]} value it is 1 at (null: every row).
     * {@code where} names the batch in errors.
     */
    public void add(String input, long[] shape, @Nullable FloatBuffer floats, @Nullable DoubleBuffer doubles,
        long @Nullable [][] mask, String where) {
      if (shape.length < 2) {
        throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, "site input '" + input + "' has shape "
            + java.util.Arrays.toString(shape) + " in " + where + "; expected [batch, …, width]");
      }
      int width = (int) shape[shape.length - 1];
      long perSample = 1;
      for (int d = 1; d < shape.length - 1; d++) {
        perSample *= shape[d];
      }
      Integer known = widths.putIfAbsent(input, width);
      if (known != null && known != width) {
        throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, "site input '" + input + "' has width " + width
            + " in " + where + ", expected " + known);
      }
      double[] sum = sums.computeIfAbsent(input, k -> new double[width * width]);
      boolean masked = mask != null && shape.length == 3 && mask.length == shape[0] && mask[0].length == shape[1];
      double[] row = new double[width];
      for (int b = 0; b < shape[0]; b++) {
        long first = b * perSample;
        double max = Double.NEGATIVE_INFINITY;
        int kept = 0;
        for (long t = 0; t < perSample; t++) {
          if (masked && mask[b][(int) t] == 0) {
            continue;
          }
          kept++;
          for (int j = 0; j < width; j++) {
            double x = value(floats, doubles, (first + t) * width + j);
            if (!Double.isFinite(x)) {
              throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, "site input '" + input + "' holds " + x
                  + " in example " + b + " of " + where);
            }
            max = Math.max(max, x);
          }
        }
        if (kept == 0) {
          continue;
        }
        double scale = Math.abs(max);
        if (!(scale > 0)) {
          throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, "site input '" + input + "' of example " + b
              + " of " + where + " has largest entry " + max + ", by whose magnitude CorDA divides the rows");
        }
        for (long t = 0; t < perSample; t++) {
          if (masked && mask[b][(int) t] == 0) {
            continue;
          }
          for (int j = 0; j < width; j++) {
            row[j] = value(floats, doubles, (first + t) * width + j) / scale;
          }
          for (int i = 0; i < width; i++) {
            double xi = row[i];
            if (xi == 0) {
              continue;
            }
            int base = i * width;
            for (int j = 0; j < width; j++) {
              sum[base + j] += xi * row[j];
            }
          }
        }
        counts.merge(input, 1L, Long::sum);
      }
    }

    private static double value(@Nullable FloatBuffer floats, @Nullable DoubleBuffer doubles, long index) {
      return floats != null ? floats.get((int) index) : java.util.Objects.requireNonNull(doubles).get((int) index);
    }

    /** The mean covariance of each input over its samples; an input without a sample is {@code GRAFT-R341}. */
    public Calibration finish(SortedSet<String> inputs) {
      SortedMap<String, double[]> means = new TreeMap<>();
      SortedMap<String, Long> samples = new TreeMap<>();
      for (String input : inputs) {
        long n = counts.getOrDefault(input, 0L);
        if (n == 0) {
          throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, "calibration saw no example with a token at"
              + " site input '" + input + "'; give it at least one non-empty example");
        }
        double[] mean = sums.get(input).clone();
        for (int i = 0; i < mean.length; i++) {
          mean[i] /= n;
        }
        means.put(input, mean);
        samples.put(input, n);
      }
      return new Calibration(java.util.Collections.unmodifiableSortedMap(means),
          java.util.Collections.unmodifiableSortedMap(samples));
    }
  }

  /**
   * The values of every calibrated parameter of {@code manifest} (by name) from these covariances
   * and the host weights: one decomposition per site, A and its frozen copy A0 the same.
   */
  public Map<String, float[]> parameterValues(Manifest manifest, HostWeights host) {
    Map<String, CovarianceFactors> bySite = new HashMap<>();
    Map<String, float[]> out = new TreeMap<>();
    for (Parameter p : manifest.getParametersList()) {
      if (!calibrated(p)) {
        continue;
      }
      boolean isA = p.getInit() == Init.CORDA_A;
      HostWeights.Weight w = ParameterInit.hostWeight(p, host);
      long[] dims = w.dims();
      if (dims.length != 2 || p.getShapeCount() != 2
          || (isA ? p.getShape(0) != dims[0] : p.getShape(1) != dims[1])) {
        throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, p.getName() + ": " + p.getInit() + " of shape "
            + p.getShapeList() + " does not fit host weight '" + p.getInitSource() + "' " + java.util.Arrays.toString(dims));
      }
      int in = (int) dims[0];
      int outWidth = (int) dims[1];
      int rank = (int) p.getShape(isA ? 1 : 0);
      double[] c = covariances.get(p.getCovarianceInput());
      if (c == null || c.length != (long) in * in) {
        throw new GraftException(RuntimeErrorCode.CALIBRATION_DATA, p.getName() + ": expected a covariance of "
            + in + "×" + in + " for site input '" + p.getCovarianceInput() + "', given "
            + (c == null ? "none" : c.length + " values"));
      }
      String key = p.getInitSource() + "\u0000" + p.getCovarianceInput() + "\u0000" + rank + "\u0000" + p.getInitScale()
          + "\u0000" + p.getSmallestComponents();
      CovarianceFactors f = bySite.computeIfAbsent(key, k -> CovarianceFactors.of(p.getSiteNode(),
          ParameterInit.hostValues(p, host), in, outWidth, c, rank, p.getInitScale(), p.getSmallestComponents()));
      out.put(p.getName(), (isA ? f.a() : f.b()).clone());
    }
    return out;
  }
}
