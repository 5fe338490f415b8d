package dev.graft.compiler.kinds.lora;

import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.LinearUpdateKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import com.google.protobuf.ByteString;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import org.jspecify.annotations.Nullable;

/**
 * SketchTune (sketch to adapt, 2025) on a linear site: the host weight is replaced by a sketch,
 * 4-bit indices into small trainable codebooks. The output channels (the columns of {@code W [in,
 * out]}, the rows of a weight stored {@code [out, in]}) are split into groups of {@code groupSize},
 * and the inputs of each into {@code groupsPerRow} contiguous column groups (the reference's GPR);
 * each group has a codebook of 16 values, built here by 1-D k-means (Lloyd, {@code iterations}
 * rounds at most, started at the 16 quantiles {@code (2c + 1)/32} of the group's sorted values)
 * of the group's weights, each weight taking the index of its nearest centroid. The indices are
 * a constant of the graphs packed two per byte (low nibble first) and unpacked in the graph; the
 * decoded weight {@code Ŵ[r, c] = codebook[group(r, c)][index[r, c]]} is a {@code Gather} of the
 * flattened codebooks, whose gradient scatters (adds) into the codebooks. Only the codebooks
 * train: the parameter is the offset {@code dC [groups, 16]} from the k-means centroids {@code
 * C0} (a constant), zero at the start, so the initial weight is the sketch of W.
 */
public final class SketchTuneKind implements LinearUpdateKind {
  /** Values per codebook (4-bit indices). */
  public static final int CODES = 16;

  private static final Map<TensorProto, Map<String, Sketch>> CACHE = Collections.synchronizedMap(new WeakHashMap<>());

  @Override
  public String id() {
    return "sketchtune";
  }

  @Override
  public String displayName() {
    return "SketchTune";
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.SketchTune";
  }

  @Override
  public List<AdapterOption> options() {
    return List.of(
        AdapterOption.integer("groupSize", 8, 1, Integer.MAX_VALUE, "output channels sharing one codebook of 16 values"),
        // Any integer: one below 1 or not dividing a row is GRAFT322, which names the row width.
        AdapterOption.integer("groupsPerRow", 1, Integer.MIN_VALUE, Integer.MAX_VALUE,
            "column groups along each output channel's inputs, each group of groupSize channels × inputs/groupsPerRow"
            + " with its own codebook (the reference's GPR)"),
        AdapterOption.integer("iterations", 20, 1, 1000, "the most Lloyd rounds of each group's 1-D k-means"));
  }

  @Override
  public String defaultTarget(AdapterSpec spec) {
    return LoraKind.DEFAULT_TARGET;
  }

  /**
   * The sketch of one weight in its stored layout {@code [rows, cols]}: group {@code (ch / groupSize)
   * · groupsPerRow + in / (inputs / groupsPerRow)} holds the weights of output channel {@code ch}
   * and input {@code in}, so each block of {@code groupSize} channels has {@code groupsPerRow}
   * codebooks, one per contiguous run of its inputs.
   *
   * @param centroids {@code [groups, 16]} row-major
   * @param codes one index in 0..15 per weight, row-major
   * @param channelsOnRows whether the output channels are the rows (a weight stored {@code [out, in]})
   */
  public record Sketch(int rows, int cols, boolean channelsOnRows, int groupSize, int groupsPerRow, double[] centroids,
      byte[] codes) {
    public int groups() {
      return channels() / groupSize * groupsPerRow;
    }

    /** The output channels: the rows of a weight stored {@code [out, in]}, else the columns. */
    public int channels() {
      return channelsOnRows ? rows : cols;
    }

    /** The inputs of each output channel (the row width of the reference's {@code [out, in]} layout). */
    public int inputs() {
      return channelsOnRows ? cols : rows;
    }

    /** The group of the output channel {@code channel} at {@code input}. */
    public int channelGroup(int channel, int input) {
      return channel / groupSize * groupsPerRow + input / (inputs() / groupsPerRow);
    }

    /** The group of the weight at {@code (r, c)}. */
    public int group(int r, int c) {
      return channelsOnRows ? channelGroup(r, c) : channelGroup(c, r);
    }

    /** The decoded weight {@code codebook[group][index]} from {@code centroids}, row-major. */
    public double[] decode(double[] codebooks) {
      double[] w = new double[rows * cols];
      for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
          w[r * cols + c] = codebooks[group(r, c) * CODES + codes[r * cols + c]];
        }
      }
      return w;
    }

    /** The indices two per byte, the even element in the low nibble. */
    public byte[] packed() {
      byte[] p = new byte[codes.length / 2];
      for (int i = 0; i < p.length; i++) {
        p[i] = (byte) (codes[2 * i] | codes[2 * i + 1] << 4);
      }
      return p;
    }
  }

  /** The k-means sketch of {@code w [rows, cols]} row-major. */
  public static Sketch sketch(double[] w, int rows, int cols, boolean channelsOnRows, int groupSize, int groupsPerRow,
      int iterations) {
    Sketch layout = new Sketch(rows, cols, channelsOnRows, groupSize, groupsPerRow, new double[0], new byte[0]);
    int groups = layout.groups();
    int n = rows * cols / groups;
    // The weights of each group, in row-major order.
    int[][] members = new int[groups][n];
    int[] filled = new int[groups];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        int gi = layout.group(r, c);
        members[gi][filled[gi]++] = r * cols + c;
      }
    }
    double[] centroids = new double[groups * CODES];
    byte[] codes = new byte[rows * cols];
    for (int gi = 0; gi < groups; gi++) {
      int[] where = members[gi];
      double[] values = new double[n];
      for (int i = 0; i < n; i++) {
        values[i] = w[where[i]];
      }
      double[] sorted = values.clone();
      Arrays.sort(sorted);
      double[] m = new double[CODES];
      for (int c = 0; c < CODES; c++) {
        m[c] = sorted[(int) Math.min(n - 1, (long) (2 * c + 1) * n / (2 * CODES))];
      }
      int[] assign = new int[n];
      for (int round = 0; round < iterations; round++) {
        boolean changed = round == 0;
        for (int i = 0; i < n; i++) {
          int best = nearest(m, values[i]);
          if (best != assign[i]) {
            assign[i] = best;
            changed = true;
          }
        }
        if (!changed) {
          break;
        }
        double[] sum = new double[CODES];
        int[] count = new int[CODES];
        for (int i = 0; i < n; i++) {
          sum[assign[i]] += values[i];
          count[assign[i]]++;
        }
        for (int c = 0; c < CODES; c++) {
          if (count[c] > 0) {
            m[c] = sum[c] / count[c];
          }
        }
      }
      for (int i = 0; i < n; i++) {
        codes[where[i]] = (byte) nearest(m, values[i]);
      }
      System.arraycopy(m, 0, centroids, gi * CODES, CODES);
    }
    return new Sketch(rows, cols, channelsOnRows, groupSize, groupsPerRow, centroids, codes);
  }

  /** The index of the centroid nearest {@code x}, the first on a tie. */
  private static int nearest(double[] m, double x) {
    int best = 0;
    double distance = Math.abs(x - m[0]);
    for (int c = 1; c < m.length; c++) {
      double d = Math.abs(x - m[c]);
      if (d < distance) {
        best = c;
        distance = d;
      }
    }
    return best;
  }

  @Override
  public List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    List<Diagnostic> out = new ArrayList<>();
    int g = spec.intOption("groupSize");
    int perRow = spec.intOption("groupsPerRow");
    for (Site s : sites) {
      LinearSite site = (LinearSite) s;
      @Nullable String why = SokaKind.unreadable(graph, site);
      if (why == null && site.in() * site.out() % 2 != 0) {
        why = "its weight has an odd number of values (" + site.in() + " × " + site.out() + ") and the indices are packed two per byte";
      }
      if (why != null) {
        out.add(Diagnostic.of(ErrorCode.SKETCHTUNE_SITE_UNSUPPORTED, spec.source(), null, site.node(), why));
      } else if (site.out() % g != 0) {
        out.add(Diagnostic.of(ErrorCode.SKETCHTUNE_GROUP_MISMATCH, spec.source(), "groupSize", g, site.out(), site.node()));
      }
      if (perRow < 1 || site.in() % perRow != 0) {
        out.add(Diagnostic.of(ErrorCode.SKETCHTUNE_GROUPS_PER_ROW_MISMATCH, spec.source(), "groupsPerRow", perRow,
            site.in(), site.node(), site.in()));
      }
    }
    return out;
  }

  /** The sketch of the site's weight, computed once per weight and options. */
  public static Sketch sketch(AdapterSpec spec, LinearSite site, Graph graph) {
    TensorProto t = graph.initializers().get(site.weight());
    if (t == null) {
      throw new IllegalStateException("no host weight '" + site.weight() + "' to sketch at " + site.node());
    }
    int groupSize = spec.intOption("groupSize");
    int groupsPerRow = spec.intOption("groupsPerRow");
    int iterations = spec.intOption("iterations");
    return CACHE.computeIfAbsent(t, k -> new java.util.concurrent.ConcurrentHashMap<>()).computeIfAbsent(
        groupSize + "/" + groupsPerRow + "/" + iterations, k -> {
          int rows = (int) t.getDims(0);
          int cols = (int) t.getDims(1);
          return sketch(Tensors.readDoubles(t), rows, cols, site.outFirst(), groupSize, groupsPerRow, iterations);
        });
  }

  /** The decoded weight {@code Gather(flatten(C0 + dC), offsets + unpack(indices))} in the stored layout. */
  private static String decoded(Graph g, String base, int elem, Sketch s, String offset) {
    TensorProto packed = TensorProto.newBuilder().setName("indices").setDataType(TensorType.UINT8)
        .addDims(s.codes().length / 2).setRawData(ByteString.copyFrom(s.packed())).build();
    String bytes = g.op(base + "/Cast", "Cast", List.of(g.constant(base + "/indices", packed)),
        Node.attr("to", (long) TensorType.INT64));
    String sixteen = g.constant(base + "/sixteen", Tensors.longs("sixteen", List.of(), List.of(16L)));
    String high = g.op(base + "/Div", "Div", List.of(bytes, sixteen));
    String low = g.op(base + "/Sub", "Sub", List.of(bytes, g.op(base + "/Mul", "Mul", List.of(high, sixteen))));
    String one = g.longs(base + "/axis", List.of(1L));
    String pairs = g.op(base + "/Concat", "Concat", List.of(g.op(base + "/Unsqueeze_low", "Unsqueeze", List.of(low, one)),
        g.op(base + "/Unsqueeze_high", "Unsqueeze", List.of(high, one))), Node.attr("axis", 1L));
    String codes = g.op(base + "/Reshape_codes", "Reshape", List.of(pairs,
        g.longs(base + "/shape", List.of((long) s.rows(), (long) s.cols()))));
    // 16 · group = 16 · (channel / groupSize · groupsPerRow) + 16 · (input / (inputs / groupsPerRow)), broadcast.
    long channels = s.channels();
    long inputs = s.inputs();
    List<Long> groupOffsets = new ArrayList<>();
    for (int c = 0; c < channels; c++) {
      groupOffsets.add((long) s.channelGroup(c, 0) * CODES);
    }
    String offsets = g.constant(base + "/group_offsets", Tensors.longs("group_offsets",
        s.channelsOnRows() ? List.of(channels, 1L) : List.of(1L, channels), groupOffsets));
    String index = g.op(base + "/Add_offsets", "Add", List.of(codes, offsets));
    if (s.groupsPerRow() > 1) {
      List<Long> columnOffsets = new ArrayList<>();
      for (int i = 0; i < inputs; i++) {
        columnOffsets.add((long) s.channelGroup(0, i) * CODES);
      }
      String columns = g.constant(base + "/column_group_offsets", Tensors.longs("column_group_offsets",
          s.channelsOnRows() ? List.of(1L, inputs) : List.of(inputs, 1L), columnOffsets));
      index = g.op(base + "/Add_column_offsets", "Add", List.of(index, columns));
    }
    String c0 = g.constant(base + "/C0", Tensors.floats("C0", elem, List.of((long) s.groups(), (long) CODES), s.centroids()));
    String codebooks = g.op(base + "/Add_C", "Add", List.of(c0, offset));
    String flat = g.op(base + "/Reshape_C", "Reshape", List.of(codebooks, g.longs(base + "/flat", List.of(-1L))));
    return g.op(base + "/Gather", "Gather", List.of(flat, index), Node.attr("axis", 0L));
  }

  @Override
  public void place(AdapterSpec spec, List<? extends Site> sites, Placement placement) {
    Graph g = placement.graph();
    for (Site each : sites) {
      LinearSite site = (LinearSite) each;
      Sketch s = sketch(spec, site, g);
      String base = LinearAdapters.base(site, "sketchtune");
      String offset = placement.parameter(site, "sketchtune_dC", s.groups(), CODES).init(Init.ZEROS, 0).noDecay()
          .save(Placement.peftKey(site, "sketchtune_dC")).add();
      String weight = decoded(g, base, placement.elemType(), s, offset);
      Node node = LinearAdapters.node(g, site);
      List<String> inputs = new ArrayList<>(node.inputs());
      int at = inputs.indexOf(site.weight());
      if (at < 0) {
        // A MatMul reading the weight through a Transpose: replace the Transpose's input.
        node = g.nodes().stream().filter(n -> n.opType().equals("Transpose") && n.inputs().contains(site.weight())
            && n.outputs().stream().anyMatch(inputs::contains)).findFirst().orElseThrow();
        inputs.clear();
        inputs.addAll(node.inputs());
        at = inputs.indexOf(site.weight());
      }
      inputs.set(at, weight);
      // The host weight is no longer read here; the compiler drops it from the graph where nothing else reads it.
      g.replaceNode(node, node.withInputs(inputs));
    }
  }

  /**
   * The merged weight: the decoded sketch {@code Ŵ} as {@code [in, out]}. In a graph this kind
   * was placed in, the host weight is gone (nothing reads it) and the placed decoding of the same
   * codebook parameter is used.
   */
  @Override
  public WeightUpdate weightUpdate(AdapterSpec spec, LinearSite site, Graph graph, SiteTensors tensors) {
    String placed = LinearAdapters.base(site, "sketchtune");
    String base = placed + "/delta";
    String offset = tensors.parameter("sketchtune_dC");
    String weight;
    if (graph.initializers().containsKey(site.weight())) {
      weight = decoded(graph, base, graph.typeOrThrow(offset).elemType(), sketch(spec, site, graph), offset);
    } else {
      Node add = named(graph, placed + "/Add_C", site);
      if (!add.inputs().contains(offset)) {
        throw new IllegalStateException("the placed sketch at " + site.node() + " reads " + add.inputs() + ", not " + offset);
      }
      weight = named(graph, placed + "/Gather", site).output(0);
    }
    return new WeightUpdate(LinearAdapters.weightInOut(graph, site, weight, base), true, null);
  }

  private static Node named(Graph graph, String name, LinearSite site) {
    return graph.nodes().stream().filter(n -> n.name().equals(name)).findFirst().orElseThrow(() ->
        new IllegalStateException("neither the host weight '" + site.weight() + "' nor the placed sketch node " + name));
  }
}
