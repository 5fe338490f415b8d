package dev.graft.compiler.passes;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.lora.LinearAdapters;
import dev.graft.compiler.plan.PlannedAdapter;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.SiteUpdate;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.jspecify.annotations.Nullable;

/**
 * Update pass (the {@code UPDATE} graph variant): on a placed forward graph, for every linear site
 * with a {@link LinearUpdateKind} adapter, outputs the site's update as factors {@code
 * update/<site>/A} {@code [in, r]} and {@code update/<site>/B} {@code [r, out]}, the adapted
 * weight ({@code [in, out]}) being {@code W + A·B}, and {@code update/<site>/bias} {@code [out]}
 * where the kind changes the bias. The LoRA family gives its own scaled factors ({@link
 * LinearUpdateKind#factors}); any other kind a dense pair: {@code ΔW} (DoRA: {@code W' − W}) with
 * an identity on its smaller side.
 *
 * <p>Not mergeable, with the reason in the record: a kind that is not a {@link LinearUpdateKind}
 * (bottlenecks, prompt/prefix tuning, mixtures, custom kinds), a named adapter placed by a
 * composition block behind its gate (validation allows one declaration per site otherwise), a
 * declaration on an int8 linear site (its host weight stays int8; merging would make it float).
 *
 * <p>Needs: the graph of a forward variant with its adapters placed and the parameters they
 * added. Guarantees: the graph's outputs are the update outputs only, in declaration and site
 * order; unused nodes and the inputs that are not parameters removed (parameters stay declared).
 */
public final class SiteUpdates {
  /** Prefix of the update graph's outputs: {@code update/<module path>/A}, {@code …/B}, {@code …/bias}. */
  public static final String PREFIX = "update/";

  private SiteUpdates() {}

  /**
   * The host bias of every linear site of {@code adapters} that has one ({@link
   * LinearUpdateKind.SiteTensors#hostBias}), by site node, read on the host before placement.
   */
  public static Map<String, String> hostBiases(Graph host, List<PlannedAdapter> adapters) {
    Map<String, String> out = new HashMap<>();
    for (PlannedAdapter a : adapters) {
      for (Site s : a.sites()) {
        if (s instanceof LinearSite site) {
          String b = LinearUpdateKind.SiteTensors.hostBias(host, site);
          if (b != null) {
            out.put(site.node(), b);
          }
        }
      }
    }
    return out;
  }

  /**
   * @param hostBiases the sites' host biases ({@link #hostBiases}, read before placement)
   */
  public static List<SiteUpdate> add(Graph graph, List<PlannedAdapter> adapters, List<Parameter> parameters,
      Map<String, String> hostBiases) {
    List<SiteUpdate> records = new ArrayList<>();
    List<String> outputs = new ArrayList<>();
    for (int i = 0; i < adapters.size(); i++) {
      PlannedAdapter a = adapters.get(i);
      for (Site s : a.sites()) {
        SiteUpdate.Builder r = SiteUpdate.newBuilder().setAdapter(i + 1).setKind(a.kind().id())
            .setSite(s.modulePath()).setSiteNode(s.node());
        String reason = reason(a);
        if (reason != null) {
          records.add(r.setReason(reason).build());
          continue;
        }
        LinearSite site = (LinearSite) s;
        LinearUpdateKind kind = (LinearUpdateKind) a.kind();
        records.add(update(graph, a, kind, site, kind.tensors(a.spec(), a.sites(), site, parameters),
            hostBiases.get(site.node()), r, outputs));
      }
    }
    graph.outputs().clear();
    graph.outputs().addAll(outputs);
    graph.removeUnused();
    Set<String> used = new HashSet<>();
    graph.nodes().forEach(n -> used.addAll(n.inputs()));
    used.addAll(outputs);
    Set<String> declared = new HashSet<>();
    parameters.forEach(p -> declared.add(p.getName()));
    graph.inputs().keySet().removeIf(name -> !declared.contains(name) && !used.contains(name));
    return records;
  }

  /** Whether declaration {@code a} has a merged form at its sites (every site alike). */
  public static boolean mergeable(PlannedAdapter a) {
    return reason(a) == null;
  }

  /** Prefix of the merged graph's merged tensors: {@code merged/<module path>/weight}, {@code …/bias}. */
  public static final String MERGED_PREFIX = "merged/";

  /**
   * Merged-graph part: in {@code graph} (placed by {@link AdapterPlacement#placeMerged}, the
   * mergeable sites untouched) each mergeable site node reads a new external initializer {@code
   * merged/<site>/weight} (the host weight's type and shape) instead of its host weight (through a
   * new Transpose where the site reads its host weight through one), and the
   * node adding its host bias {@code merged/<site>/bias} where the update changes it. Returns the
   * records with {@code merged_weight} and {@code merged_bias} set.
   */
  public static List<SiteUpdate> merged(Graph graph, List<SiteUpdate> records) {
    List<SiteUpdate> out = new ArrayList<>();
    boolean transposes = false;
    for (SiteUpdate r : records) {
      if (!r.getMergeable()) {
        out.add(r);
        continue;
      }
      SiteUpdate.Builder b = r.toBuilder();
      Node node = graph.nodes().stream().filter(n -> n.name().equals(r.getSiteNode())).findFirst().orElseThrow();
      String weight = declare(graph, MERGED_PREFIX + r.getSite() + "/weight", r.getHostWeight());
      // A site reading its weight through a Transpose (a tied LM head) reads the merged weight the
      // same way; the host weight stays as it is for its other readers (the embedding lookup).
      String read = weight;
      if (!node.input(1).equals(r.getHostWeight())) {
        read = graph.op("/" + MERGED_PREFIX + r.getSite().replace('.', '/') + "/Transpose", "Transpose",
            List.of(weight), Node.attr("perm", List.of(1L, 0L)));
        transposes = true;
      }
      replaceInput(graph, node, 1, read);
      b.setMergedWeight(weight);
      node = graph.nodes().stream().filter(n -> n.name().equals(r.getSiteNode())).findFirst().orElseThrow();
      if (!r.getOutputBias().isEmpty()) {
        String bias = declare(graph, MERGED_PREFIX + r.getSite() + "/bias", r.getHostBias());
        Node site = node;
        Node adds = site.opType().equals("Gemm") && site.input(2).equals(r.getHostBias()) ? site
            : graph.nodes().stream().filter(n -> n.opType().equals("Add") && n.inputs().contains(site.output(0))
                && n.inputs().contains(r.getHostBias())).findFirst().orElseThrow();
        replaceInput(graph, adds, adds.inputs().indexOf(r.getHostBias()), bias);
        b.setMergedBias(bias);
      }
      out.add(b.build());
    }
    if (transposes) {
      // The new Transposes were added last; ONNX wants every node after the nodes it reads.
      graph.sortTopologically();
    }
    return out;
  }

  /** An external initializer {@code name} of {@code like}'s element type and shape, without data. */
  private static String declare(Graph graph, String name, String like) {
    TensorProto host = graph.initializers().get(like);
    graph.addInitializer(TensorProto.newBuilder().setName(name).setDataType(host.getDataType())
        .addAllDims(host.getDimsList()).build(), true);
    return name;
  }

  private static void replaceInput(Graph graph, Node node, int index, String value) {
    List<String> inputs = new ArrayList<>(node.inputs());
    inputs.set(index, value);
    graph.replaceNode(node, node.withInputs(inputs));
  }

  private static @Nullable String reason(PlannedAdapter a) {
    if (!(a.kind() instanceof LinearUpdateKind)) {
      return a.kind().displayName() + " (" + a.kind().id() + ") is not a change of the layer's weight";
    }
    if (a.spec().quantizeBits() > 0) {
      return "its weights are quantized in the forward pass (quantizeBits = " + a.spec().quantizeBits()
          + "), which the update's factors would not be; save the adapter (bit-packed) or export it unmerged";
    }
    if (CompositionPlacement.placesHere(a)) {
      return "the named adapter '" + a.spec().name() + "' is placed by a composition behind its gate";
    }
    for (Site s : a.sites()) {
      if (s instanceof LinearSite site && site.int8() != null) {
        return "the host weight '" + site.weight() + "' of " + site.node() + " is int8 (MatMulInteger): a merged"
            + " weight W + ΔW would be a float copy of it (or a requantized, lossy int8 one); save or export the"
            + " adapter unmerged";
      }
    }
    return null;
  }

  private static SiteUpdate update(Graph g, PlannedAdapter a, LinearUpdateKind kind, LinearSite site,
      LinearUpdateKind.SiteTensors tensors, @Nullable String hostBias, SiteUpdate.Builder r, List<String> outputs) {
    Node node = LinearAdapters.node(g, site);
    boolean gemm = node.opType().equals("Gemm");
    int elem = g.typeOrThrow(site.weight()).elemType();
    String name = PREFIX + site.modulePath();
    String base = "/update/" + site.modulePath().replace('.', '/');
    LinearUpdateKind.Factors factors = kind.factors(a.spec(), site, g, tensors);
    String bias = null;
    boolean lowRank = factors != null;
    if (factors == null) {
      LinearUpdateKind.WeightUpdate u = kind.weightUpdate(a.spec(), site, g, tensors);
      String delta = u.weight();
      if (u.merged()) {
        delta = g.op(base + "/Sub_W", "Sub", List.of(delta, LinearAdapters.weightInOut(g, site, site.weight(), base)));
      }
      bias = u.bias();
      if (site.out() <= site.in()) {
        factors = new LinearUpdateKind.Factors(delta, identity(g, base, elem, site.out()), site.out());
      } else {
        factors = new LinearUpdateKind.Factors(identity(g, base, elem, site.in()), delta, site.in());
      }
    }
    String outA = g.opTo(name + "/A", base + "/A", "Identity", List.of(factors.a()));
    String outB = g.opTo(name + "/B", base + "/B", "Identity", List.of(factors.b()));
    outputs.add(outA);
    outputs.add(outB);
    r.setMergeable(true).setHostWeight(site.weight())
        .setTransposed(site.outFirst())
        .setGemmAlpha(gemm ? node.attrFloat("alpha", 1f) : 1)
        .setHostBias(hostBias == null ? "" : hostBias)
        .setOutputA(outA).setOutputB(outB)
        .setRank(factors.rank()).setLowRank(lowRank).setIn(site.in()).setOut(site.out());
    if (bias != null) {
      String outBias = g.opTo(name + "/bias", base + "/bias", "Identity", List.of(bias));
      outputs.add(outBias);
      r.setOutputBias(outBias);
    }
    return r.build();
  }

  /** The identity {@code [n, n]} of element type {@code elem}, made in the graph (not stored). */
  private static String identity(Graph g, String base, int elem, long n) {
    String zeros = g.op(base + "/ConstantOfShape", "ConstantOfShape", List.of(g.longs(base + "/shape", List.of(n, n))),
        Node.attr("value", Tensors.floats("value", elem, List.of(1L), new double[] {0})));
    return g.op(base + "/EyeLike", "EyeLike", List.of(zeros));
  }
}
