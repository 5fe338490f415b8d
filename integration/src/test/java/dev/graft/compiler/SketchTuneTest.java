package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.lora.SketchTuneKind;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Parameter;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * SketchTune: the k-means sketch (codes, codebooks, packing) against the weight, the decoded
 * weight in the graph against {@code codebook[idx]} computed here, the initial output against the
 * host's, the whole training step against central differences on the float64 tiny BERT, and the
 * errors.
 */
class SketchTuneTest {
  private static final int D = TensorType.DOUBLE;
  private static final String SITES = ".*/(query|intermediate/dense)/MatMul";

  /**
   * A random {@code W [8, 16]}, 4 groups of 4 output columns: every weight's code is its nearest
   * centroid of its group, the decoded weight is {@code codebook[group][code]}, Lloyd's rounds do
   * not raise the squared error of the quantile start (one round), and the packed bytes hold the
   * codes low nibble first.
   */
  @Test
  void theSketchIsEachGroupsNearestCentroids() {
    double[] w = new double[128];
    Random r = new Random(2);
    for (int i = 0; i < w.length; i++) {
      w[i] = r.nextGaussian();
    }
    SketchTuneKind.Sketch s = SketchTuneKind.sketch(w, 8, 16, false, 4, 1, 20);
    SketchTuneKind.Sketch start = SketchTuneKind.sketch(w, 8, 16, false, 4, 1, 1);
    assertEquals(4, s.groups());
    double[] decoded = s.decode(s.centroids());
    double error = 0;
    for (int i = 0; i < 8; i++) {
      for (int j = 0; j < 16; j++) {
        int e = i * 16 + j;
        int group = j / 4;
        assertEquals(s.centroids()[group * 16 + s.codes()[e]], decoded[e], 0);
        for (int c = 0; c < 16; c++) {
          assertTrue(Math.abs(w[e] - decoded[e]) <= Math.abs(w[e] - s.centroids()[group * 16 + c]) + 1e-15,
              "the nearest centroid at " + e);
        }
        error += (w[e] - decoded[e]) * (w[e] - decoded[e]);
      }
    }
    double startError = 0;
    double[] startDecoded = start.decode(start.centroids());
    double variance = 0;
    for (int e = 0; e < w.length; e++) {
      startError += (w[e] - startDecoded[e]) * (w[e] - startDecoded[e]);
      variance += w[e] * w[e];
    }
    assertTrue(error <= startError + 1e-12, error + " vs " + startError);
    assertTrue(error < 0.05 * variance, "16 levels for 32 values: " + error + " of " + variance);
    byte[] packed = s.packed();
    for (int i = 0; i < packed.length; i++) {
      assertEquals(s.codes()[2 * i], packed[i] & 15);
      assertEquals(s.codes()[2 * i + 1], (packed[i] & 0xff) >> 4);
    }
    System.out.printf("SketchTuneTest k-means of a random [8, 16], groups of 4: squared error %.4g (quantile start %.4g,"
        + " ‖W‖² %.4g)%n", error, startError, variance);
  }

  /**
   * Column groups (groupsPerRow 4, pairs of output channels) on a random {@code W [in 64, out 8]}:
   * 16 groups, the weight at input i of channel c in group {@code (c / 2)·4 + i / 16}, each code the
   * nearest centroid of its own group's codebook, the decoded weight that codebook's value, and the
   * same sketch (transposed) from the weight stored {@code [out, in]}.
   */
  @Test
  void eachColumnGroupOfARowHasItsOwnCodebook() {
    int in = 64;
    int out = 8;
    double[] w = new double[in * out];
    double[] stored = new double[in * out];
    Random r = new Random(5);
    for (int i = 0; i < in; i++) {
      for (int c = 0; c < out; c++) {
        w[i * out + c] = r.nextGaussian();
        stored[c * in + i] = w[i * out + c];
      }
    }
    SketchTuneKind.Sketch s = SketchTuneKind.sketch(w, in, out, false, 2, 4, 20);
    SketchTuneKind.Sketch t = SketchTuneKind.sketch(stored, out, in, true, 2, 4, 20);
    SketchTuneKind.Sketch whole = SketchTuneKind.sketch(w, in, out, false, 2, 1, 20);
    assertEquals(16, s.groups());
    assertEquals(16, t.groups());
    double[] decoded = s.decode(s.centroids());
    double[] decodedT = t.decode(t.centroids());
    double error = 0;
    double wholeError = 0;
    double[] wholeDecoded = whole.decode(whole.centroids());
    int[] members = new int[16];
    for (int i = 0; i < in; i++) {
      for (int c = 0; c < out; c++) {
        int e = i * out + c;
        int group = c / 2 * 4 + i / 16;
        assertEquals(group, s.group(i, c));
        assertEquals(group, t.group(c, i));
        members[group]++;
        assertEquals(s.centroids()[group * 16 + s.codes()[e]], decoded[e], 0);
        for (int k = 0; k < 16; k++) {
          assertTrue(Math.abs(w[e] - decoded[e]) <= Math.abs(w[e] - s.centroids()[group * 16 + k]) + 1e-15,
              "the nearest centroid of its group at " + e);
        }
        assertEquals(s.codes()[e], t.codes()[c * in + i], "the same code from either layout at " + e);
        assertEquals(decoded[e], decodedT[c * in + i], 1e-12);
        error += (w[e] - decoded[e]) * (w[e] - decoded[e]);
        wholeError += (w[e] - wholeDecoded[e]) * (w[e] - wholeDecoded[e]);
      }
    }
    for (int m : members) {
      assertEquals(2 * 16, m, "2 channels × 16 inputs in each group");
    }
    assertArrayEquals(s.centroids(), t.centroids(), 1e-12);
    assertTrue(error < wholeError, "4 codebooks per row fit better than one: " + error + " vs " + wholeError);
    System.out.printf("SketchTuneTest k-means of a random [64, 8], pairs of channels: squared error %.4g at groupsPerRow 4,"
        + " %.4g at 1%n", error, wholeError);
  }

  /**
   * With the codebook offsets at zero, the graft's logits equal those of the host whose weights at
   * the sites are replaced by {@code codebook[idx]} computed here (difference ≤ 1e-12), and are
   * close to the host's own; moving a codebook value changes them.
   */
  @Test
  void theInitialModelIsTheHostWithItsSketchedWeights() throws OrtException {
    initialModelIsTheSketchedHost(TinyBertHost.graph(11, D), TinyBertHost.graph(11, D), 4, 1);
  }

  /**
   * As above with groups of 8 channels, two column groups per row (32 weights per codebook), the
   * weights stored {@code [in, out]} and, read through a Transpose, {@code [out, in]}.
   */
  @Test
  void withColumnGroupsTheInitialModelIsTheHostWithItsSketchedWeights() throws OrtException {
    initialModelIsTheSketchedHost(TinyBertHost.graph(11, D), TinyBertHost.graph(11, D), 8, 2);
    initialModelIsTheSketchedHost(transposedSites(TinyBertHost.graph(11, D)), transposedSites(TinyBertHost.graph(11, D)), 8, 2);
  }

  private static void initialModelIsTheSketchedHost(Graph host, Graph sketched, int groupSize, int groupsPerRow)
      throws OrtException {
    AdapterSpec spec = Adapters.of("sketchtune", SITES,
        Map.of("groupSize", groupSize, "groupsPerRow", groupsPerRow, "iterations", 20));
    double quantization = 0;
    int sites = 0;
    for (LinearSite site : LinearSite.find(host)) {
      if (site.node().matches(SITES)) {
        sites++;
        SketchTuneKind.Sketch s = SketchTuneKind.sketch(spec, site, host);
        assertEquals(groupsPerRow, s.groupsPerRow());
        assertEquals(site.out() / groupSize * groupsPerRow, s.groups(), site.node());
        double[] decoded = s.decode(s.centroids());
        var t = host.initializers().get(site.weight());
        double[] w = Tensors.readDoubles(t);
        for (int i = 0; i < w.length; i++) {
          quantization = Math.max(quantization, Math.abs(w[i] - decoded[i]));
        }
        sketched.initializers().put(site.weight(), Tensors.floats(site.weight(), D, t.getDimsList(), decoded));
      }
    }
    assertEquals(4, sites);
    Map<String, double[]> head = new HashMap<>();
    double[] original = headOnly(host, head, true);
    double[] reference = headOnly(sketched, head, false);
    try (WholeStepCheck c = WholeStepCheck.classification(host, spec)) {
      for (Parameter p : c.params) {
        if (p.getSite().equals("classifier")) {
          c.values.put(p.getName(), head.get(p.getName()));
        } else {
          Arrays.fill(c.values.get(p.getName()), 0);
        }
      }
      double[] initial = c.inference();
      double worst = 0;
      double fromHost = 0;
      for (int i = 0; i < initial.length; i++) {
        worst = Math.max(worst, Math.abs(initial[i] - reference[i]));
        fromHost = Math.max(fromHost, Math.abs(initial[i] - original[i]));
      }
      assertTrue(worst < 1e-12, "decoded in the graph vs codebook[idx]: " + worst);
      assertTrue(fromHost < 0.1, "the sketch is close to the host: " + fromHost);
      assertTrue(quantization > 0.01, "more weights than codes per codebook, so the sketch is not exact: " + quantization);
      System.out.printf("SketchTuneTest initial logits, groupSize %d, groupsPerRow %d%s: vs codebook[idx] host %.3g,"
          + " vs the host itself %.3g (max |W − Ŵ| %.3g)%n", groupSize, groupsPerRow,
          LinearSite.find(host).stream().anyMatch(LinearSite::outFirst) ? ", [out, in] weights" : "", worst, fromHost, quantization);
      Parameter first = c.params.stream().filter(p -> p.getName().endsWith("sketchtune_dC")).findFirst().orElseThrow();
      // Every value of one site's codebooks (with several column groups, some of a group's 16 codes may be unused).
      Arrays.fill(c.values.get(first.getName()), 0.5);
      assertTrue(Math.abs(c.inference()[0] - initial[0]) > 1e-6, "the codebook values change the output");
    }
  }

  /** The logits of {@code host} with LoRA B = 0 (the head alone), the head from {@code head} or, with {@code fill}, into it. */
  private static double[] headOnly(Graph host, Map<String, double[]> head, boolean fill) throws OrtException {
    try (WholeStepCheck lora = WholeStepCheck.classification(host, Adapters.of("lora", "", Map.of("rank", 1)))) {
      for (Parameter p : lora.params) {
        if (p.getSite().equals("classifier")) {
          if (fill) {
            head.put(p.getName(), lora.values.get(p.getName()));
          } else {
            lora.values.put(p.getName(), head.get(p.getName()));
          }
        } else if (p.getName().endsWith("lora_B")) {
          Arrays.fill(lora.values.get(p.getName()), 0);
        }
      }
      return lora.inference();
    }
  }

  /**
   * {@code host} with the weights of the sites {@link #SITES} matches stored {@code [out, in]} and
   * read through a Transpose (as a tied head or a torch {@code nn.Linear} export): the same function.
   */
  private static Graph transposedSites(Graph host) {
    for (LinearSite site : LinearSite.find(host)) {
      if (!site.node().matches(SITES)) {
        continue;
      }
      var t = host.initializers().remove(site.weight());
      double[] w = Tensors.readDoubles(t);
      int in = (int) t.getDims(0);
      int out = (int) t.getDims(1);
      double[] stored = new double[w.length];
      for (int i = 0; i < in; i++) {
        for (int o = 0; o < out; o++) {
          stored[o * in + i] = w[i * out + o];
        }
      }
      String name = site.weight() + "_out_in";
      host.initializers().put(name, Tensors.floats(name, D, List.of((long) out, (long) in), stored));
      var node = host.nodes().stream().filter(n -> n.name().equals(site.node())).findFirst().orElseThrow();
      String read = host.op(site.node() + "_Transpose", "Transpose", List.of(name), Node.attr("perm", List.of(1L, 0L)));
      List<String> inputs = new java.util.ArrayList<>(node.inputs());
      inputs.set(inputs.indexOf(site.weight()), read);
      host.replaceNode(node, node.withInputs(inputs));
    }
    host.sortTopologically();
    List<LinearSite> sites = LinearSite.find(host).stream().filter(s -> s.node().matches(SITES)).toList();
    assertEquals(4, sites.size());
    assertTrue(sites.stream().allMatch(LinearSite::outFirst), "every site reads [out, in]");
    return host;
  }

  @Test
  void withColumnGroupsTheWholeStepMatchesCentralDifferences() throws OrtException {
    for (Graph host : List.of(TinyBertHost.graph(11, D), transposedSites(TinyBertHost.graph(11, D)))) {
      try (WholeStepCheck check = WholeStepCheck.classification(host,
          Adapters.of("sketchtune", SITES, Map.of("groupSize", 4, "groupsPerRow", 2, "iterations", 20)))) {
        assertEquals(List.of(List.of(4L, 16L), List.of(8L, 16L), List.of(4L, 16L), List.of(8L, 16L)),
            check.params.stream().filter(p -> p.getName().endsWith("sketchtune_dC")).map(Parameter::getShapeList).toList());
        double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
        assertTrue(worst < 1e-7, "max error " + worst);
        System.out.printf("SketchTuneTest whole step, groupsPerRow 2%s: max error %.3g%n",
            host.initializers().keySet().stream().anyMatch(k -> k.endsWith("_out_in")) ? " ([out, in] weights)" : "", worst);
      }
    }
  }

  @Test
  void wholeStepMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck check = WholeStepCheck.classification(TinyBertHost.graph(11, D),
        Adapters.of("sketchtune", SITES, Map.of("groupSize", 4, "iterations", 20)))) {
      assertEquals(List.of(List.of(2L, 16L), List.of(4L, 16L), List.of(2L, 16L), List.of(4L, 16L)),
          check.params.stream().filter(p -> p.getName().endsWith("sketchtune_dC")).map(Parameter::getShapeList).toList());
      double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("SketchTuneTest whole step: max error %.3g%n", worst);
    }
  }

  private static List<Diagnostic> errors(Graft graft) {
    return assertThrows(GraftCompileException.class, () -> graft.classification(2).compile()).diagnostics();
  }

  @Test
  void aGroupSizeOrGroupsPerRowThatDoesNotDivideAndAnInt8WeightAreReported() {
    List<Diagnostic> d = errors(Graft.host(TinyBertHost.host(3)).sketchTune("", o -> o.set("groupSize", 3)));
    assertEquals(ErrorCode.SKETCHTUNE_GROUP_MISMATCH, d.get(0).code());
    assertEquals("groupSize", d.get(0).attribute());
    assertTrue(d.get(0).message().startsWith("[GRAFT320] SketchTune groupSize 3 does not divide the 8 output channels of"),
        d.get(0).message());
    for (int perRow : new int[] {3, 0, -2}) {
      List<Diagnostic> g = errors(Graft.host(TinyBertHost.host(3)).sketchTune("", o -> o.groupsPerRow(perRow)));
      assertEquals(ErrorCode.SKETCHTUNE_GROUPS_PER_ROW_MISMATCH, g.get(0).code());
      assertEquals("groupsPerRow", g.get(0).attribute());
      assertTrue(g.get(0).message().startsWith("[GRAFT322] SketchTune groupsPerRow " + perRow
          + " must be at least 1 and divide the 8 inputs of each output channel of"), g.get(0).message());
    }
    List<Diagnostic> int8 = errors(Graft.host(TinyBertHost.host(TinyBertHost.int8Graph(3))).sketchTune(""));
    assertEquals(ErrorCode.SKETCHTUNE_SITE_UNSUPPORTED, int8.get(0).code());
    assertTrue(int8.get(0).message().contains("int8"), int8.get(0).message());
  }
}
