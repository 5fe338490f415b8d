package dev.graft.runtime.merge;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.export.MergedExport;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.SiteUpdate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * One input of a merge: the weight update of each linear site an adapter changes ({@link
 * SiteDelta}, by module path), the task head's tensors ({@link HeadTensor}, by saved key), a name
 * for the provenance, and the SHA-256 of the host it was compiled against ("" unknown). Whatever
 * kinds made it (LoRA of any rank, LoKr, LoHa, VeRA, IA³, DoRA …), an input is only {@code ΔW}s:
 * inputs of different kinds on the same host merge alike. Get one from an open model with {@link
 * dev.graft.runtime.AdapterModel#delta(String)} (after loading the adapter, checkpoint or folder
 * to merge into it).
 */
public final class AdapterDelta {
  private final String name;
  private final String hostSha256;
  private final SortedMap<String, SiteDelta> sites;
  private final SortedMap<String, HeadTensor> head;

  private AdapterDelta(String name, String hostSha256, SortedMap<String, SiteDelta> sites,
      SortedMap<String, HeadTensor> head) {
    this.name = name;
    this.hostSha256 = hostSha256;
    this.sites = Collections.unmodifiableSortedMap(sites);
    this.head = Collections.unmodifiableSortedMap(head);
  }

  /** An input of the given site updates (one per site) and head tensors (one per key). */
  public static AdapterDelta of(String name, String hostSha256, List<SiteDelta> sites, List<HeadTensor> head) {
    SortedMap<String, SiteDelta> s = new TreeMap<>();
    for (SiteDelta d : sites) {
      if (s.put(d.site(), d) != null) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "input '" + name
            + "': expected one update per site, given two for " + d.site());
      }
    }
    SortedMap<String, HeadTensor> h = new TreeMap<>();
    for (HeadTensor t : head) {
      if (h.put(t.key(), t) != null) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "input '" + name
            + "': expected one head tensor per key, given two for " + t.key());
      }
    }
    return new AdapterDelta(name, hostSha256, s, h);
  }

  /**
   * The updates of an open model's graft at its current parameter values: the update graph
   * ({@code GraphVariant.UPDATE}) run on them, each mergeable site's {@code A·B} (summed over the
   * adapter declarations that share a site) and bias change; the head's tensors as saved. A graft
   * with an adapter that has no {@code ΔW} form (a bottleneck, prompt tuning …) or a trainable
   * parameter that is neither a site's nor the head's is refused ({@code GRAFT-R131}), since its
   * effect would be lost.
   */
  public static AdapterDelta of(String name, MergedExport.Source source) {
    Manifest m = source.graphs().manifest();
    List<String> refused = new ArrayList<>();
    for (SiteUpdate u : m.getSiteUpdatesList()) {
      if (!u.getMergeable()) {
        Adapter a = m.getAdapters(u.getAdapter() - 1);
        refused.add(a.getKind() + " at " + u.getSite() + " (" + u.getReason() + ")");
      }
    }
    TreeSet<Integer> withUpdates = new TreeSet<>();
    m.getSiteUpdatesList().forEach(u -> withUpdates.add(u.getAdapter()));
    for (int i = 0; i < m.getAdaptersCount(); i++) {
      if (!withUpdates.contains(i + 1)) {
        refused.add(m.getAdapters(i).getKind() + " (no weight update at a linear site)");
      }
    }
    for (Parameter p : m.getParametersList()) {
      if (p.getAdapter() == 0 && p.getRole() != ParameterRole.HEAD_WEIGHT && p.getRole() != ParameterRole.HEAD_BIAS) {
        refused.add("parameter " + p.getName() + " (neither an adapter's nor the head's)");
      }
    }
    if (!refused.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "graft '" + m.getName()
          + "': expected only adapters with a weight update at linear sites, given " + String.join("; ", refused));
    }
    if (source.graphs().updateGraph() == null || m.getUpdateGraph().isEmpty()) {
      throw new GraftException(RuntimeErrorCode.EXPORT_UNSUPPORTED, "graft '" + m.getName()
          + "' has no update graph; recompile it with this Graft");
    }
    Map<String, float[]> outputs = MergedExport.updates(source);
    SortedMap<String, double[]> weights = new TreeMap<>();
    SortedMap<String, double[]> biases = new TreeMap<>();
    SortedMap<String, int[]> widths = new TreeMap<>();
    for (SiteUpdate u : m.getSiteUpdatesList()) {
      int in = (int) u.getIn();
      int out = (int) u.getOut();
      int[] had = widths.putIfAbsent(u.getSite(), new int[] {in, out});
      if (had != null && (had[0] != in || had[1] != out)) {
        throw new GraftException(RuntimeErrorCode.MERGE_INPUTS, "site " + u.getSite() + ": two updates of widths ["
            + had[0] + ", " + had[1] + "] and [" + in + ", " + out + "]");
      }
      SiteDelta d = SiteDelta.factored(u.getSite(), in, out, (int) u.getRank(), doubles(outputs, u.getOutputA()),
          doubles(outputs, u.getOutputB()), u.getOutputBias().isEmpty() ? null : doubles(outputs, u.getOutputBias()));
      add(weights.computeIfAbsent(u.getSite(), k -> new double[in * out]), d.weightView());
      add(biases.computeIfAbsent(u.getSite(), k -> new double[out]), d.biasView());
    }
    List<SiteDelta> sites = new ArrayList<>();
    for (String s : weights.keySet()) {
      SiteUpdate first = m.getSiteUpdatesList().stream().filter(u -> u.getSite().equals(s)).findFirst().orElseThrow();
      long declarations = m.getSiteUpdatesList().stream().filter(u -> u.getSite().equals(s)).count();
      int in = widths.get(s)[0];
      int out = widths.get(s)[1];
      sites.add(declarations == 1
          ? SiteDelta.factored(s, in, out, (int) first.getRank(), doubles(outputs, first.getOutputA()),
              doubles(outputs, first.getOutputB()), biases.get(s))
          : SiteDelta.dense(s, in, out, weights.get(s), biases.get(s)));
    }
    List<HeadTensor> head = new ArrayList<>();
    PeftAdapters.stateDict(new ValuesStore(m, source.parameters())).forEach((key, t) -> {
      if (isHead(m, key)) {
        float[] f = t.toFloats();
        double[] v = new double[f.length];
        for (int i = 0; i < f.length; i++) {
          v[i] = f[i];
        }
        head.add(new HeadTensor(key, t.shape(), v));
      }
    });
    return of(name, m.getHostSha256(), sites, head);
  }

  private static boolean isHead(Manifest m, String key) {
    for (Parameter p : m.getParametersList()) {
      if ((p.getRole() == ParameterRole.HEAD_WEIGHT || p.getRole() == ParameterRole.HEAD_BIAS)
          && p.getSaveKey().equals(key)) {
        return true;
      }
    }
    return false;
  }

  private static double[] doubles(Map<String, float[]> outputs, String name) {
    float[] v = outputs.get(name);
    if (v == null) {
      throw new GraftException(RuntimeErrorCode.FORMAT, "the update graph has no output " + name
          + " (expected by the manifest's site_updates)");
    }
    double[] d = new double[v.length];
    for (int i = 0; i < v.length; i++) {
      d[i] = v[i];
    }
    return d;
  }

  private static void add(double[] into, double[] v) {
    for (int i = 0; i < v.length; i++) {
      into[i] += v[i];
    }
  }

  /** The name the provenance records (a file, a checkpoint's step, an adapter's task). */
  public String name() {
    return name;
  }

  /** The SHA-256 of the host the input was compiled against ("" unknown). */
  public String hostSha256() {
    return hostSha256;
  }

  /** The sites' updates by module path, sorted. */
  public SortedMap<String, SiteDelta> sites() {
    return sites;
  }

  /** The head's tensors by saved key, sorted (empty: no head). */
  public SortedMap<String, HeadTensor> head() {
    return head;
  }

  /** This input with another name. */
  public AdapterDelta named(String newName) {
    return new AdapterDelta(newName, hostSha256, new TreeMap<>(sites), new TreeMap<>(head));
  }

  @Override
  public String toString() {
    return "AdapterDelta[" + name + ": " + sites.size() + " sites, " + head.size() + " head tensors]";
  }

  /** Parameter values by name as a store, for the saved layout of the head. */
  private record ValuesStore(Manifest manifest, Map<String, float[]> values)
      implements dev.graft.runtime.state.ParameterStore {
    @Override
    public Manifest getManifest() {
      return manifest;
    }

    @Override
    public float[] getParameter(String n) {
      return values.get(n).clone();
    }

    @Override
    public void setParameter(String n, float[] v) {
      throw new UnsupportedOperationException("read only");
    }
  }
}
