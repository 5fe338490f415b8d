package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * The builder of a merge: a method of the registry, inputs with their weights, options; {@link
 * #run()} merges every site any input changes (an input that leaves a site alone counts as a zero
 * update there) with the method, and the heads as the weighted mean (weights normalized).
 *
 * <pre>{@code
 * MergeResult r = Merge.method("ties").add(amazon, 1.0).add(yelp, 1.0).density(0.2).run();
 * r.toRank(8).savePeft(dir);
 * }</pre>
 */
public final class Merge {
  private final MergeMethod method;
  private final List<AdapterDelta> inputs = new ArrayList<>();
  private final List<Double> weights = new ArrayList<>();
  private MergeOptions options = MergeOptions.defaults();

  private Merge(MergeMethod method) {
    this.method = method;
  }

  /** A merge by registry method {@code id} ({@code GRAFT-R130} when unknown). */
  public static Merge method(String id) {
    return new Merge(MergeMethods.get(id));
  }

  /** A merge by {@code method}. */
  public static Merge method(MergeMethod method) {
    return new Merge(method);
  }

  /** Adds an input with weight {@code weight} (finite). */
  public Merge add(AdapterDelta input, double weight) {
    if (!Double.isFinite(weight)) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "input '" + input.name()
          + "': expected a finite weight, given " + weight);
    }
    inputs.add(input);
    weights.add(weight);
    return this;
  }

  /** Adds the inputs with one weight each, in order. */
  public Merge add(List<AdapterDelta> given, double[] givenWeights) {
    if (given.size() != givenWeights.length) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "expected one weight per input (" + given.size()
          + " inputs), given " + givenWeights.length + " weights");
    }
    for (int i = 0; i < given.size(); i++) {
      add(given.get(i), givenWeights[i]);
    }
    return this;
  }

  public Merge options(MergeOptions value) {
    options = value;
    return this;
  }

  public Merge density(double value) {
    options = options.withDensity(value);
    return this;
  }

  public Merge dropRate(double value) {
    options = options.withDropRate(value);
    return this;
  }

  public Merge lambda(double value) {
    options = options.withLambda(value);
    return this;
  }

  public Merge seed(long value) {
    options = options.withSeed(value);
    return this;
  }

  /** Merges: the inputs are checked to agree (host, site widths, head keys and shapes), then each site is merged. */
  public MergeResult run() {
    if (inputs.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, method.id() + ": expected at least one input, given none");
    }
    check();
    double[] w = weights.stream().mapToDouble(Double::doubleValue).toArray();
    TreeSet<String> sites = new TreeSet<>();
    inputs.forEach(i -> sites.addAll(i.sites().keySet()));
    SortedMap<String, SiteDelta> merged = new TreeMap<>();
    for (String site : sites) {
      List<@Nullable SiteDelta> deltas = new ArrayList<>();
      inputs.forEach(i -> deltas.add(i.sites().get(site)));
      merged.put(site, method.merge(site, deltas, w, options));
    }
    return new MergeResult(method, options, inputs.stream().map(AdapterDelta::name).toList(), w, merged,
        heads(w), 0, new TreeMap<>());
  }

  private void check() {
    String host = "";
    String hostOf = "";
    SortedMap<String, int[]> widths = new TreeMap<>();
    SortedMap<String, String> widthsOf = new TreeMap<>();
    for (AdapterDelta in : inputs) {
      if (!in.hostSha256().isEmpty()) {
        if (!host.isEmpty() && !host.equals(in.hostSha256())) {
          throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "expected inputs on one host, given '" + hostOf
              + "' on host sha256 " + host + " and '" + in.name() + "' on " + in.hostSha256());
        }
        host = in.hostSha256();
        hostOf = in.name();
      }
      for (SiteDelta d : in.sites().values()) {
        int[] had = widths.putIfAbsent(d.site(), new int[] {d.in(), d.out()});
        if (had != null && (had[0] != d.in() || had[1] != d.out())) {
          throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + d.site() + ": expected the widths ["
              + had[0] + ", " + had[1] + "] of '" + widthsOf.get(d.site()) + "', given [" + d.in() + ", " + d.out()
              + "] in '" + in.name() + "'");
        }
        widthsOf.putIfAbsent(d.site(), in.name());
      }
    }
  }

  private SortedMap<String, HeadTensor> heads(double[] w) {
    AdapterDelta first = inputs.get(0);
    SortedMap<String, HeadTensor> out = new TreeMap<>();
    for (AdapterDelta in : inputs) {
      if (!in.head().keySet().equals(first.head().keySet())) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "expected every input's head to have the tensors "
            + first.head().keySet() + " of '" + first.name() + "', given " + in.head().keySet() + " in '" + in.name() + "'");
      }
      for (HeadTensor t : in.head().values()) {
        HeadTensor f = first.head().get(t.key());
        if (!Arrays.equals(f.shape(), t.shape())) {
          throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "head tensor " + t.key() + ": expected the shape "
              + Arrays.toString(f.shape()) + " of '" + first.name() + "', given " + Arrays.toString(t.shape())
              + " in '" + in.name() + "'");
        }
      }
    }
    if (first.head().isEmpty()) {
      return out;
    }
    double total = 0;
    for (double x : w) {
      total += x;
    }
    if (total == 0) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "the heads are merged as the weighted mean: expected"
          + " weights whose sum is not 0, given a sum of 0");
    }
    for (String key : first.head().keySet()) {
      double[] sum = new double[first.head().get(key).values().length];
      for (int i = 0; i < inputs.size(); i++) {
        double[] v = inputs.get(i).head().get(key).values();
        for (int j = 0; j < sum.length; j++) {
          sum[j] += w[i] / total * v[j];
        }
      }
      out.put(key, new HeadTensor(key, first.head().get(key).shape(), sum));
    }
    return out;
  }
}
