package dev.graft.runtime.train;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.io.SparseDiff;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * LT-SFT's two phases (Ansell et al., <i>Composable Sparse Fine-Tuning for Cross-Lingual
 * Transfer</i>, ACL 2022) on a graft whose training step takes update masks (the {@code ltsft}
 * kind, {@code W + Δ} per site). Phase 1 trains Δ densely (every mask true): Δ = θ1 − θ0. Then
 * the K entries of largest |Δ| are kept ({@link #select}, over all masked parameters or K per
 * parameter), every parameter goes back to its value before phase 1 (θ0: Δ = 0, the head as it
 * was) with fresh optimizer state, and phase 2 trains only those K entries of Δ (the other
 * parameters, a task head, densely). The result is Δ as a {@link SparseDiff}.
 */
public final class SparseFineTuning {
  private SparseFineTuning() {}

  /** How K is counted: over all masked parameters together, or K in each. */
  public enum Selection {
    GLOBAL,
    PER_PARAMETER
  }

  /**
   * The two phases' results and the trained sparse difference.
   *
   * @param phase1 the dense phase
   * @param phase2 the sparse phase
   * @param diff the K trained entries of each masked parameter
   */
  public record Result(TrainingResult phase1, TrainingResult phase2, SparseDiff diff) {}

  /**
   * Runs both phases on {@code model} (phase 1 with {@code dense}, phase 2 with {@code sparse}),
   * telling {@code progress} (may be null) where it is.
   *
   * @throws GraftException (GRAFT-R332) when the model has no masked parameter or K is out of range
   */
  public static Result train(AdapterModel model, Trainer dense, Trainer sparse, long k, Selection selection,
      List<Example> train, List<Example> heldOut, @Nullable PrintStream progress) {
    Set<String> masked = model.getUpdateMaskParameters();
    if (masked.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.NO_SPARSE_PARAMETERS, "graft '" + model.getManifest().getName()
          + "' has no parameter whose training step takes an update mask (declare ltsft / @SparseFineTuning)");
    }
    Map<String, float[]> start = model.getParameterValues();
    for (String p : masked) {
      model.setUpdateMask(p, all(start.get(p).length, true));
    }
    say(progress, "LT-SFT phase 1: dense training of " + masked.size() + " parameters");
    TrainingResult phase1 = dense.fit(model, train, heldOut);
    Map<String, float[]> difference = new LinkedHashMap<>();
    for (String p : masked) {
      float[] now = model.getParameter(p);
      float[] before = start.get(p);
      for (int i = 0; i < now.length; i++) {
        now[i] -= before[i];
      }
      difference.put(p, now);
    }
    Map<String, boolean[]> chosen = select(difference, k, selection);
    start.forEach(model::setParameter);
    model.resetOptimizer();
    chosen.forEach(model::setUpdateMask);
    say(progress, String.format(Locale.ROOT, "LT-SFT phase 2: %d of %d entries (%s), from θ0", count(chosen),
        difference.values().stream().mapToLong(v -> v.length).sum(), selection));
    TrainingResult phase2 = sparse.fit(model, train, heldOut);
    Map<String, SparseDiff.Entry> entries = new LinkedHashMap<>();
    for (String p : masked) {
      float[] now = model.getParameter(p);
      float[] before = start.get(p);
      for (int i = 0; i < now.length; i++) {
        now[i] -= before[i];
      }
      entries.put(p, SparseDiff.entry(model.getParameterShape(p), now, chosen.get(p)));
    }
    return new Result(phase1, phase2, new SparseDiff(entries));
  }

  /**
   * The masks of the K entries of largest |difference| (over all parameters, or K in each):
   * the entries above the K-th largest magnitude, then those equal to it in parameter-name and
   * index order until K are chosen.
   *
   * @throws GraftException (GRAFT-R332) for K outside 1..the entries to choose from
   */
  public static Map<String, boolean[]> select(Map<String, float[]> difference, long k, Selection selection) {
    Map<String, boolean[]> out = new LinkedHashMap<>();
    if (selection == Selection.PER_PARAMETER) {
      for (Map.Entry<String, float[]> e : new TreeMap<>(difference).entrySet()) {
        out.putAll(topK(Map.of(e.getKey(), e.getValue()), k));
      }
      return out;
    }
    return topK(new TreeMap<>(difference), k);
  }

  private static Map<String, boolean[]> topK(Map<String, float[]> difference, long k) {
    long total = difference.values().stream().mapToLong(v -> v.length).sum();
    if (k < 1 || k > total) {
      throw new GraftException(RuntimeErrorCode.NO_SPARSE_PARAMETERS, "K must be in 1.." + total
          + " (the entries of " + difference.keySet() + "), got " + k);
    }
    float[] magnitudes = new float[Math.toIntExact(total)];
    int j = 0;
    for (float[] v : difference.values()) {
      for (float x : v) {
        magnitudes[j++] = Math.abs(x);
      }
    }
    Arrays.sort(magnitudes);
    float threshold = magnitudes[(int) (total - k)];
    long above = 0;
    for (float[] v : difference.values()) {
      for (float x : v) {
        above += Math.abs(x) > threshold ? 1 : 0;
      }
    }
    long ties = k - above;
    Map<String, boolean[]> out = new LinkedHashMap<>();
    for (Map.Entry<String, float[]> e : difference.entrySet()) {
      float[] v = e.getValue();
      boolean[] mask = new boolean[v.length];
      for (int i = 0; i < v.length; i++) {
        float a = Math.abs(v[i]);
        if (a > threshold) {
          mask[i] = true;
        } else if (a == threshold && ties > 0) {
          mask[i] = true;
          ties--;
        }
      }
      out.put(e.getKey(), mask);
    }
    return out;
  }

  private static long count(Map<String, boolean[]> masks) {
    long n = 0;
    for (boolean[] m : masks.values()) {
      for (boolean b : m) {
        n += b ? 1 : 0;
      }
    }
    return n;
  }

  private static boolean[] all(int n, boolean value) {
    boolean[] m = new boolean[n];
    Arrays.fill(m, value);
    return m;
  }

  private static void say(@Nullable PrintStream progress, String line) {
    if (progress != null) {
      progress.println(line);
    }
  }
}
