package dev.graft.runtime.merge;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.Collections;
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

  @Override
  public String toString() {
    return "MergeResult[" + provenance() + "]";
  }
}
