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
    SketchTuneKind.Sketch s = SketchTuneKind.sketch(w, 8, 16, false, 4, 20);
    SketchTuneKind.Sketch start = SketchTuneKind.sketch(w, 8, 16, false, 4, 1);
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
   * With the codebook offsets at zero, the graft's logits equal those of the host whose weights at
   * the sites are replaced by {@code codebook[idx]} computed here (difference ≤ 1e-12), and are
   * close to the host's own; moving a codebook value changes them.
   */
  @Test
  void theInitialModelIsTheHostWithItsSketchedWeights() throws OrtException {
    Graph host = TinyBertHost.graph(11, D);
    AdapterSpec spec = Adapters.of("sketchtune", SITES, Map.of("groupSize", 4, "iterations", 20));
    Graph sketched = TinyBertHost.graph(11, D);
    double quantization = 0;
    for (LinearSite site : LinearSite.find(host)) {
      if (site.node().matches(SITES)) {
        SketchTuneKind.Sketch s = SketchTuneKind.sketch(spec, site, host);
        double[] decoded = s.decode(s.centroids());
        var t = host.initializers().get(site.weight());
        double[] w = Tensors.readDoubles(t);
        for (int i = 0; i < w.length; i++) {
          quantization = Math.max(quantization, Math.abs(w[i] - decoded[i]));
        }
        sketched.initializers().put(site.weight(), Tensors.floats(site.weight(), D, t.getDimsList(), decoded));
      }
    }
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
      System.out.printf("SketchTuneTest initial logits: vs codebook[idx] host %.3g, vs the host itself %.3g"
          + " (max |W − Ŵ| %.3g)%n", worst, fromHost, quantization);
      Parameter first = c.params.stream().filter(p -> p.getName().endsWith("sketchtune_dC")).findFirst().orElseThrow();
      c.values.get(first.getName())[3] = 0.5;
      assertTrue(Math.abs(c.inference()[0] - initial[0]) > 1e-6, "a codebook value changes the output");
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
  void aGroupSizeThatDoesNotDivideAndAnInt8WeightAreReported() {
    List<Diagnostic> d = errors(Graft.host(TinyBertHost.host(3)).sketchTune("", o -> o.set("groupSize", 3)));
    assertEquals(ErrorCode.SKETCHTUNE_GROUP_MISMATCH, d.get(0).code());
    assertEquals("groupSize", d.get(0).attribute());
    assertTrue(d.get(0).message().startsWith("[GRAFT320] SketchTune groupSize 3 does not divide the 8 output channels of"),
        d.get(0).message());
    List<Diagnostic> int8 = errors(Graft.host(TinyBertHost.host(TinyBertHost.int8Graph(3))).sketchTune(""));
    assertEquals(ErrorCode.SKETCHTUNE_SITE_UNSUPPORTED, int8.get(0).code());
    assertTrue(int8.get(0).message().contains("int8"), int8.get(0).message());
  }
}
