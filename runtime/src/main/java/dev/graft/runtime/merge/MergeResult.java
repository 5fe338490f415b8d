package dev.graft.runtime.merge;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.export.MergedExport;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.io.TensorData;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * A merged update: each site's merged {@link SiteDelta}, the merged head, and the provenance
 * (inputs and weights, method, options, re-factorization). Immutable; {@link #toRank} gives a
 * re-factored copy.
 */
public final class MergeResult {
  private final MergeMethod method;
  private final MergeOptions options;
  private final List<String> inputs;
  private final double[] weights;
  private final SortedMap<String, SiteDelta> sites;
  private final SortedMap<String, HeadTensor> head;
  private final int rank;
  private final SortedMap<String, Double> discarded;

  MergeResult(MergeMethod method, MergeOptions options, List<String> inputs, double[] weights,
      SortedMap<String, SiteDelta> sites, SortedMap<String, HeadTensor> head, int rank,
      SortedMap<String, Double> discarded) {
    this.method = method;
    this.options = options;
    this.inputs = List.copyOf(inputs);
    this.weights = weights.clone();
    this.sites = Collections.unmodifiableSortedMap(new TreeMap<>(sites));
    this.head = Collections.unmodifiableSortedMap(new TreeMap<>(head));
    this.rank = rank;
    this.discarded = Collections.unmodifiableSortedMap(new TreeMap<>(discarded));
  }

  public MergeMethod method() {
    return method;
  }

  /** False for a method that approximates (PEFT's A/B-wise combination); a re-factored result is exact only up to {@link #discarded()}. */
  public boolean exact() {
    return method.exact();
  }

  public MergeOptions options() {
    return options;
  }

  /** The inputs' names, in order. */
  public List<String> inputs() {
    return inputs;
  }

  /** The inputs' weights, in order. */
  public double[] weights() {
    return weights.clone();
  }

  /** The merged update of every site, by module path. */
  public SortedMap<String, SiteDelta> sites() {
    return sites;
  }

  /** The merged head (the weighted mean of the inputs' heads), by saved key; empty without a head. */
  public SortedMap<String, HeadTensor> head() {
    return head;
  }

  /** The rank it was re-factored to by {@link #toRank}; 0 when it was not. */
  public int rank() {
    return rank;
  }

  /**
   * By site, the Frobenius norm of what the last re-factorization dropped, {@code ‖ΔW − ΔW_r‖_F =
   * sqrt(Σ_{j>r} σ_j²)}; empty when it was not re-factored.
   */
  public SortedMap<String, Double> discarded() {
    return discarded;
  }

  /**
   * Re-factors every site's merged update to rank {@code min(rank, in, out)} by its SVD, {@code
   * ΔW ≈ (U_r·√S_r)·(√S_r·V_rᵀ)}: the best approximation of that rank in the Frobenius norm (the
   * Eckart–Young theorem), with error {@code sqrt(Σ_{j>r} σ_j²)} ({@link #discarded()}). A factored
   * update is decomposed through the QR factorizations of its factors, a dense one directly.
   */
  public MergeResult toRank(int rank) {
    if (rank < 1) {
      throw new GraftException(RuntimeErrorCode.MERGE_OPTION, "rank must be at least 1, got " + rank);
    }
    SortedMap<String, SiteDelta> out = new TreeMap<>();
    SortedMap<String, Double> lost = new TreeMap<>();
    for (SiteDelta d : sites.values()) {
      LowRank.Factors f = LowRank.refactor(d, rank);
      out.put(d.site(), f.delta());
      lost.put(d.site(), f.discarded());
    }
    return new MergeResult(method, options, inputs, weights, out, head, rank, lost);
  }

  /** The provenance as JSON: {@code method}, {@code exact}, the method's {@code options}, {@code inputs} with weights, {@code rank}. */
  public JsonObject provenance() {
    JsonObject p = new JsonObject();
    p.addProperty("method", method.id());
    p.addProperty("exact", method.exact());
    JsonObject o = new JsonObject();
    for (String k : new TreeSet<>(method.options())) {
      switch (k) {
        case "density" -> o.addProperty(k, options.density());
        case "dropRate" -> o.addProperty(k, options.dropRate());
        case "lambda" -> o.addProperty(k, options.lambda());
        case "seed" -> o.addProperty(k, options.seed());
        default -> throw new IllegalStateException("option " + k);
      }
    }
    p.add("options", o);
    JsonArray in = new JsonArray();
    for (int i = 0; i < inputs.size(); i++) {
      JsonObject e = new JsonObject();
      e.addProperty("name", inputs.get(i));
      e.addProperty("weight", weights[i]);
      in.add(e);
    }
    p.add("inputs", in);
    if (rank > 0) {
      p.addProperty("rank", rank);
      double worst = 0;
      for (var e : discarded.entrySet()) {
        double norm = sites.get(e.getKey()).norm();
        worst = Math.max(worst, e.getValue() / Math.max(Math.hypot(norm, e.getValue()), Double.MIN_NORMAL));
      }
      p.addProperty("max_relative_discarded", worst);
    }
    return p;
  }

  /**
   * Saves the result as a PEFT LoRA adapter folder for the LoRA graft {@code target} (its {@code
   * adapter_config.json} with the provenance under {@code graft_merge}, its keys and ranks): each
   * site's factors divided by the target's scaling there, so that PEFT or {@link
   * dev.graft.runtime.AdapterModel#loadAdapter} applying {@code lora_alpha / r} (or {@code / √r}
   * under {@code use_rslora}) once gives the merged {@code ΔW}. Sites must be factored at most at
   * the target's rank ({@link #toRank}); a bias change is {@code GRAFT-R133}.
   */
  public void savePeft(Path dir, Manifest target) {
    Map<String, float[]> values = LoraTarget.values(this, target);
    Map<String, TensorData> tensors = PeftAdapters.stateDict(new ParameterStore() {
      @Override
      public Manifest getManifest() {
        return target;
      }

      @Override
      public float[] getParameter(String name) {
        return values.get(name).clone();
      }

      @Override
      public void setParameter(String name, float[] v) {
        throw new UnsupportedOperationException("read only");
      }
    });
    PeftAdapters.save(dir, tensors, LoraTarget.config(this, target));
  }

  /**
   * Sets the parameters of {@code model}, an open LoRA graft on the merged sites, so that its
   * update is this result (as {@link #savePeft} computes them), then checks that its update graph
   * gives back each site's {@code ΔW} (to 1e-4 of its largest entry); when not, the previous values
   * are restored and it is {@code GRAFT-R133}.
   */
  public void loadInto(AdapterModel model) {
    Manifest m = model.getManifest();
    Map<String, float[]> values = LoraTarget.values(this, m);
    Map<String, float[]> before = model.getParameterValues();
    values.forEach(model::setParameter);
    try {
      AdapterDelta got = model.delta("check");
      for (SiteDelta want : sites.values()) {
        double[] w = want.weightView();
        double[] g = got.sites().get(want.site()).weightView();
        double scale = 0;
        double worst = 0;
        for (int i = 0; i < w.length; i++) {
          scale = Math.max(scale, Math.abs(w[i]));
          worst = Math.max(worst, Math.abs(w[i] - g[i]));
        }
        if (worst > 1e-4 * scale + 1e-7) {
          throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "graft '" + m.getName() + "' at site " + want.site()
              + ": expected its update to be the merged ΔW (largest entry " + scale + "), given one that differs by "
              + worst + " (does its scaling follow its adapter_config.json?)");
        }
      }
    } catch (RuntimeException e) {
      before.forEach(model::setParameter);
      throw e;
    }
  }

  /**
   * Writes the merged ONNX model of this result on {@code model}'s graft (its merged graph, host
   * and head structure; see {@link dev.graft.runtime.AdapterModel#exportMerged}) into {@code dir}:
   * every merged site's weight {@code W + ΔW} exactly (float64 sums, stored float32), whatever the
   * rank, the head as merged, the provenance in the model's {@code metadata_props} ({@code graft_merge}).
   * The graft must have one adapter per site, each with a merged form, over every merged site.
   */
  public void exportMerged(AdapterModel model, Path dir, ExportOptions options) {
    Manifest m = model.getManifest();
    Map<String, float[]> head = new LinkedHashMap<>();
    for (Parameter p : m.getParametersList()) {
      if (LoraTarget.isHead(p)) {
        head.put(p.getName(), LoraTarget.head(this, p, "graft '" + m.getName() + "'"));
      }
    }
    if (head.size() != this.head.size()) {
      throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "graft '" + m.getName() + "': expected a head of "
          + this.head.keySet() + ", given " + head.keySet());
    }
    Map<String, double[][]> override = new TreeMap<>();
    sites.forEach((site, d) -> override.put(site, new double[][] {d.weightView(), d.biasView()}));
    model.exportMerged(dir, options, new MergedExport.MergedUpdates(override, Map.of("graft_merge", provenance().toString())),
        head);
  }

  @Override
  public String toString() {
    return "MergeResult[" + provenance() + "]";
  }
}
