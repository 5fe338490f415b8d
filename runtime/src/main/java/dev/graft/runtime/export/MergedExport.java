package dev.graft.runtime.export;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.io.NestedRanks;
import dev.graft.runtime.session.HostWeights;
import dev.graft.runtime.session.NativeStack;
import dev.graft.runtime.session.Sessions;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.SiteUpdate;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * The merged export: a standalone ONNX model that a bare ONNX Runtime session runs, with no Graft
 * on the class path. It is the graft's merged graph ({@code GraphVariant.MERGE}) filled in: every
 * mergeable linear site reads {@code W + A·B} (and {@code b + Δb}), computed here from the update
 * graph's factors ({@code GraphVariant.UPDATE}) and the host weights; the adapters without a
 * merged form and the head keep their nodes, their parameters become initializers of their
 * current values, a named adapter's gate a constant of its current state. Every weight (host,
 * merged, parameter) goes to {@code <model>.data} beside the model at 64-byte aligned offsets;
 * the protobuf holds none, so a model over 2 GB is written like any other. The folder is written
 * atomically ({@link ExportFolder}).
 */
public final class MergedExport {
  private static final System.Logger LOG = System.getLogger(MergedExport.class.getName());
  private static final int FLOAT = 1;
  private static final int BOOL = 9;

  /**
   * What an export reads from an open model.
   *
   * @param graphs the graft's graphs (the update and merged graphs included)
   * @param host the host weights the graphs read as external data
   * @param parameters every parameter's current values, by name
   * @param activeAdapters the named adapters switched on
   */
  public record Source(AdapterGraphs graphs, HostWeights host, Map<String, float[]> parameters,
      Set<String> activeAdapters) {}

  private MergedExport() {}

  /**
   * Replaces what the update graph computes, for an export of a merge result: by site (module
   * path), its {@code ΔW [in, out]} row-major and {@code Δb [out]} in float64; a mergeable site
   * absent here gets no update. {@code metadata} goes into the model's {@code metadata_props}.
   */
  public record MergedUpdates(Map<String, double[][]> sites, Map<String, String> metadata) {}

  /** Writes the merged export of {@code source} into folder {@code dir} (replacing it as a whole). */
  public static void write(Source source, Path dir, ExportOptions options) {
    write(source, dir, options, null);
  }

  /**
   * Writes the merged export of {@code source} with the site updates of {@code override} in place
   * of those its parameters give (null: its own); every adapter of the graft must then be merged
   * (one declaration per site), and the head keeps the source's parameter values.
   */
  public static void write(Source source, Path dir, ExportOptions options, @Nullable MergedUpdates override) {
    Manifest m = source.graphs().manifest();
    byte[] mergeBytes = source.graphs().mergeGraph();
    byte[] updateBytes = source.graphs().updateGraph();
    if (mergeBytes == null || updateBytes == null || m.getMergeGraph().isEmpty()) {
      throw new GraftException(RuntimeErrorCode.EXPORT_UNSUPPORTED, "graft '" + m.getName()
          + "' has no merged and update graphs (expected " + m.getName() + AdapterGraphs.MERGE_SUFFIX + " and "
          + m.getName() + AdapterGraphs.UPDATE_SUFFIX + ", given " + (mergeBytes == null ? "no merged graph" : "a merged graph")
          + " and " + (updateBytes == null ? "no update graph" : "an update graph") + "); recompile it with this Graft");
    }
    List<String> unmerged = unmerged(m);
    if (options.requireMerged() && !unmerged.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.NOT_MERGEABLE, "graft '" + m.getName()
          + "': expected every adapter merged into the host's weights, given adapters without a merged form: "
          + String.join("; ", unmerged) + " (export with requireMerged off to keep them as adapters)");
    }
    Map<String, float[]> values = values(m, source.parameters(), options.dyLoraRank());
    ModelProto merge = parse(m.getMergeGraph(), mergeBytes);
    ModelProto inference = parse(m.getInferenceGraph(), source.graphs().inferenceGraph());
    Map<String, float[]> updates;
    if (override == null) {
      updates = runUpdate(m, updateBytes, source.host(), values);
    } else {
      updates = new HashMap<>();
      checkOverride(m, unmerged, override);
      ModelProto.Builder b = merge.toBuilder();
      new TreeMap<>(override.metadata()).forEach((k, v) -> b.addMetadataProps(
          dev.graft.spec.onnx.Onnx.StringStringEntryProto.newBuilder().setKey(k).setValue(v)));
      merge = b.build();
    }

    GraphProto graph = merge.getGraph();
    List<ValueInfoProto> outputs = new ArrayList<>(graph.getOutputList());
    List<ValueInfoProto> kept = options.includeHead() || outputs.size() == 1 ? outputs.subList(0, 1)
        : outputs.subList(1, outputs.size());
    Set<String> live = new HashSet<>();
    kept.forEach(o -> live.add(o.getName()));
    List<NodeProto> nodes = new ArrayList<>();
    for (int i = graph.getNodeCount() - 1; i >= 0; i--) {
      NodeProto n = graph.getNode(i);
      if (n.getOutputList().stream().anyMatch(live::contains)) {
        nodes.add(0, n);
        live.addAll(n.getInputList());
      }
    }
    Map<String, Parameter> params = new HashMap<>();
    m.getParametersList().forEach(p -> params.put(p.getName(), p));
    Map<String, String> gates = new HashMap<>();
    for (Adapter a : m.getAdaptersList()) {
      if (!a.getGate().isEmpty()) {
        gates.put(a.getGate(), a.getName());
      }
    }
    Map<String, SiteUpdate> mergedWeights = new HashMap<>();
    Map<String, SiteUpdate> mergedBiases = new HashMap<>();
    for (SiteUpdate u : m.getSiteUpdatesList()) {
      if (u.getMergeable()) {
        mergedWeights.put(u.getMergedWeight(), u);
        if (!u.getMergedBias().isEmpty()) {
          mergedBiases.put(u.getMergedBias(), u);
        }
      }
    }
    Map<String, TensorProto> inline = new HashMap<>();
    inference.getGraph().getInitializerList().forEach(t -> inline.put(t.getName(), t));

    GraphProto.Builder out = graph.toBuilder().clearNode().addAllNode(nodes).clearInput().clearInitializer()
        .clearOutput().addAllOutput(kept).clearValueInfo();
    graph.getValueInfoList().stream().filter(v -> live.contains(v.getName())).forEach(out::addValueInfo);
    ExportFolder folder = new ExportFolder();
    for (ValueInfoProto in : graph.getInputList()) {
      String name = in.getName();
      Parameter p = params.get(name);
      if (p == null && !gates.containsKey(name)) {
        // The host's inputs stay, read or not (without the head a host may not read its mask).
        out.addInput(in);
        continue;
      }
      if (!live.contains(name)) {
        continue;
      }
      if (p != null) {
        long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
        float[] v = values.get(name);
        folder.add(name, FLOAT, shape, floats(v));
      } else if (gates.containsKey(name)) {
        out.addInitializer(TensorProto.newBuilder().setName(name).setDataType(BOOL)
            .setRawData(ByteString.copyFrom(new byte[] {(byte) (source.activeAdapters().contains(gates.get(name)) ? 1 : 0)})));
      }
    }
    for (TensorProto t : graph.getInitializerList()) {
      String name = t.getName();
      if (!live.contains(name)) {
        continue;
      }
      long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
      if (t.getDataLocation() != TensorProto.DataLocation.EXTERNAL) {
        out.addInitializer(t);
      } else if (mergedWeights.containsKey(name)) {
        SiteUpdate u = mergedWeights.get(name);
        float[] w = hostFloats(u.getHostWeight(), source.host(), inline);
        folder.add(name, FLOAT, shape, floats(override == null ? mergedWeight(u, w, updates)
            : plusDense(u, w, override.sites().get(u.getSite()))));
      } else if (mergedBiases.containsKey(name)) {
        SiteUpdate u = mergedBiases.get(name);
        float[] b = hostFloats(u.getHostBias(), source.host(), inline);
        if (override == null) {
          float[] db = updates.get(u.getOutputBias());
          for (int j = 0; j < b.length; j++) {
            b[j] += db[j];
          }
        } else if (override.sites().containsKey(u.getSite())) {
          double[] db = override.sites().get(u.getSite())[1];
          for (int j = 0; j < b.length; j++) {
            b[j] = (float) (b[j] + db[j]);
          }
        }
        folder.add(name, FLOAT, shape, floats(b));
      } else {
        HostWeights.Weight w = source.host().weights().get(name);
        if (w == null) {
          throw new FormatException(m.getMergeGraph(), "initializer '" + name
              + "' is external data but not among the host weights read (" + m.getHostInitializersCount() + ")");
        }
        folder.add(name, w.dataType(), w.dims(), w.data());
      }
    }
    folder.write(dir, options, "export " + m.getName(), merge, out);
    LOG.log(System.Logger.Level.INFO, String.format(Locale.ROOT, "export %s: %s and %s written to %s (%d adapters unmerged)",
        m.getName(), options.modelFile(), options.dataFile(), dir, unmerged.size()));
  }

  /** An override fits: every adapter merged, one declaration per site, each override site one of them at its widths. */
  private static void checkOverride(Manifest m, List<String> unmerged, MergedUpdates override) {
    if (!unmerged.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "graft '" + m.getName() + "': a merge result replaces"
          + " every adapter's update, expected every adapter merged, given adapters without a merged form: "
          + String.join("; ", unmerged));
    }
    Map<String, SiteUpdate> bySite = new TreeMap<>();
    for (SiteUpdate u : m.getSiteUpdatesList()) {
      if (bySite.put(u.getSite(), u) != null) {
        throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "graft '" + m.getName()
            + "': expected one adapter declaration per site to export a merge result into, given two at " + u.getSite());
      }
    }
    for (var e : new TreeMap<>(override.sites()).entrySet()) {
      SiteUpdate u = bySite.get(e.getKey());
      if (u == null) {
        throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "graft '" + m.getName() + "' has no merged site "
            + e.getKey() + " (expected one of " + bySite.keySet() + ")");
      }
      double[][] d = e.getValue();
      boolean biasLost = d.length == 2 && u.getOutputBias().isEmpty()
          && java.util.Arrays.stream(d[1]).anyMatch(x -> x != 0);
      if (d.length != 2 || d[0].length != u.getIn() * u.getOut() || d[1].length != u.getOut() || biasLost) {
        throw new GraftException(RuntimeErrorCode.MERGE_TARGET, "site " + e.getKey() + ": expected ΔW of "
            + (u.getIn() * u.getOut()) + " values and Δb of " + u.getOut() + (u.getOutputBias().isEmpty()
                ? " zeros (the graft's merged graph keeps this site's bias)" : "") + ", given "
            + (d.length == 2 ? d[0].length + " and " + d[1].length + " values" : d.length + " arrays"));
      }
    }
  }

  /** {@code W + ΔW} (or {@code W + ΔWᵀ} for a weight stored {@code [out, in]}), {@code ΔW} dense; no change without one. */
  private static float[] plusDense(SiteUpdate u, float[] w, double @Nullable [][] d) {
    if (d == null) {
      return w;
    }
    int in = (int) u.getIn();
    int out = (int) u.getOut();
    for (int i = 0; i < in; i++) {
      for (int j = 0; j < out; j++) {
        int at = u.getTransposed() ? j * in + i : i * out + j;
        w[at] = (float) (w[at] + d[0][i * out + j]);
      }
    }
    return w;
  }

  /** Each adapter without a merged form, with its sites and why: {@code lora 'task' at [a, b]: reason}. */
  static List<String> unmerged(Manifest m) {
    Map<Integer, List<String>> sites = new TreeMap<>();
    Map<Integer, String> reasons = new HashMap<>();
    for (SiteUpdate u : m.getSiteUpdatesList()) {
      if (!u.getMergeable()) {
        sites.computeIfAbsent(u.getAdapter(), k -> new ArrayList<>()).add(u.getSite());
        reasons.put(u.getAdapter(), u.getReason());
      }
    }
    List<String> out = new ArrayList<>();
    sites.forEach((i, s) -> {
      Adapter a = m.getAdapters(i - 1);
      out.add(a.getKind() + (a.getName().isEmpty() ? "" : " '" + a.getName() + "'") + " at " + s + ": " + reasons.get(i));
    });
    return out;
  }

  static ByteBuffer floats(float[] v) {
    ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
    b.asFloatBuffer().put(v);
    return b;
  }

  /** The parameter values to export: nested-rank adapters cut to {@code rank} (0: as they are). */
  static Map<String, float[]> values(Manifest m, Map<String, float[]> given, int rank) {
    Map<String, float[]> values = new HashMap<>();
    given.forEach((k, v) -> values.put(k, v.clone()));
    if (rank > 0) {
      NestedRanks.truncate(new ParameterStore() {
        @Override
        public Manifest getManifest() {
          return m;
        }

        @Override
        public float[] getParameter(String name) {
          return values.get(name).clone();
        }

        @Override
        public void setParameter(String name, float[] v) {
          values.put(name, v);
        }
      }, rank);
    }
    return values;
  }

  static ModelProto parse(String source, byte[] bytes) {
    try {
      CodedInputStream in = CodedInputStream.newInstance(bytes);
      in.setSizeLimit(Integer.MAX_VALUE);
      return ModelProto.parseFrom(in);
    } catch (IOException e) {
      throw new FormatException(source, "not an ONNX model: " + e.getMessage(), e);
    }
  }

  /**
   * The update graph's outputs by name (see the manifest's {@code site_updates}) at the source's
   * parameter values: each mergeable site's factors {@code A}, {@code B} and bias change; none
   * when no site is mergeable.
   */
  public static Map<String, float[]> updates(Source source) {
    Manifest m = source.graphs().manifest();
    byte[] updateBytes = source.graphs().updateGraph();
    if (updateBytes == null || m.getUpdateGraph().isEmpty()) {
      throw new GraftException(RuntimeErrorCode.EXPORT_UNSUPPORTED, "graft '" + m.getName()
          + "' has no update graph (expected " + m.getName() + AdapterGraphs.UPDATE_SUFFIX + "); recompile it with this Graft");
    }
    return runUpdate(m, updateBytes, source.host(), values(m, source.parameters(), 0));
  }

  /** Runs the update graph on the parameters; its outputs by name (none when no site is mergeable). */
  private static Map<String, float[]> runUpdate(Manifest m, byte[] updateBytes, HostWeights host,
      Map<String, float[]> values) {
    Map<String, float[]> out = new HashMap<>();
    if (m.getSiteUpdatesList().stream().noneMatch(SiteUpdate::getMergeable)) {
      return out;
    }
    ModelProto update = parse(m.getUpdateGraph(), updateBytes);
    List<String> external = new ArrayList<>();
    for (TensorProto t : update.getGraph().getInitializerList()) {
      if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        external.add(t.getName());
      }
    }
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    Map<String, OnnxTensor> feeds = new HashMap<>();
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      so.addExternalInitializers(host.subset(external));
      try (OrtSession session = NativeStack.call("opening the update graph", () -> env.createSession(updateBytes, so))) {
        for (Parameter p : m.getParametersList()) {
          feeds.put(p.getName(), OnnxTensor.createTensor(env, FloatBuffer.wrap(values.get(p.getName())),
              p.getShapeList().stream().mapToLong(Long::longValue).toArray()));
        }
        try (OrtSession.Result r = session.run(feeds)) {
          for (var e : r) {
            FloatBuffer b = ((OnnxTensor) e.getValue()).getFloatBuffer();
            float[] v = new float[b.remaining()];
            b.get(v);
            out.put(e.getKey(), v);
          }
        }
      }
    } catch (OrtException e) {
      throw Sessions.failure("cannot run the update graph " + m.getUpdateGraph(), e);
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
    return out;
  }

  /** A float32 host tensor's values: from the host weights, or inline in the inference graph. */
  static float[] hostFloats(String name, HostWeights host, Map<String, TensorProto> inline) {
    HostWeights.Weight w = host.weights().get(name);
    if (w != null) {
      if (w.dataType() != FLOAT) {
        throw new GraftException(RuntimeErrorCode.EXPORT_UNSUPPORTED, "host weight '" + name
            + "': expected float32 to merge into, given element type " + w.dataType());
      }
      FloatBuffer b = w.data().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      float[] v = new float[b.remaining()];
      b.get(v);
      return v;
    }
    TensorProto t = inline.get(name);
    if (t == null || t.getDataType() != FLOAT) {
      throw new GraftException(RuntimeErrorCode.EXPORT_UNSUPPORTED, "host weight '" + name
          + "': expected a float32 initializer of the host, given " + (t == null ? "none" : "element type " + t.getDataType()));
    }
    if (!t.getRawData().isEmpty()) {
      FloatBuffer b = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      float[] v = new float[b.remaining()];
      b.get(v);
      return v;
    }
    float[] v = new float[t.getFloatDataCount()];
    for (int i = 0; i < v.length; i++) {
      v[i] = t.getFloatData(i);
    }
    return v;
  }

  /** {@code W + A·B}, or {@code W + (A·B)ᵀ} for a weight stored {@code [out, in]}; sums in double. */
  static float[] mergedWeight(SiteUpdate u, float[] w, Map<String, float[]> updates) {
    float[] a = updates.get(u.getOutputA());
    float[] b = updates.get(u.getOutputB());
    int in = (int) u.getIn();
    int out = (int) u.getOut();
    int rank = (int) u.getRank();
    if (a == null || b == null || a.length != (long) in * rank || b.length != (long) rank * out || w.length != (long) in * out) {
      throw new GraftException(RuntimeErrorCode.TENSOR_MISMATCH, "site " + u.getSite() + ": expected A [" + in + ", "
          + rank + "], B [" + rank + ", " + out + "] and W of " + ((long) in * out) + " values, given "
          + (a == null ? "no A" : a.length + " values of A") + ", " + (b == null ? "no B" : b.length + " of B") + ", "
          + w.length + " of W");
    }
    double[] row = new double[out];
    for (int i = 0; i < in; i++) {
      java.util.Arrays.fill(row, 0);
      for (int k = 0; k < rank; k++) {
        double aik = a[i * rank + k];
        if (aik == 0) {
          continue;
        }
        int bk = k * out;
        for (int j = 0; j < out; j++) {
          row[j] += aik * b[bk + j];
        }
      }
      for (int j = 0; j < out; j++) {
        int at = u.getTransposed() ? j * in + i : i * out + j;
        w[at] = (float) (w[at] + row[j]);
      }
    }
    return w;
  }
}
