package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.lora.KroneckerSvd;
import dev.graft.compiler.kinds.lora.SokaKind;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.nio.DoubleBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * SoKA: the Kronecker-product SVD against products computed here, the choice of the number of
 * terms, the Kronecker apply against the materialized product, the initial output against the
 * host's, the whole training step against central differences on the float64 tiny BERT, and the
 * errors of factors that do not divide and of weights with nothing to decompose.
 */
class SokaTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int D = TensorType.DOUBLE;

  /** {@code a [p, q] ⊗ b [r, s]} row-major. */
  private static double[] kron(double[] a, int p, int q, double[] b, int r, int s) {
    double[] out = new double[p * r * q * s];
    for (int i = 0; i < p; i++) {
      for (int j = 0; j < q; j++) {
        for (int k = 0; k < r; k++) {
          for (int l = 0; l < s; l++) {
            out[(i * r + k) * (q * s) + j * s + l] = a[i * q + j] * b[k * s + l];
          }
        }
      }
    }
    return out;
  }

  private static double[] gaussian(Random r, int n) {
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = r.nextGaussian();
    }
    return v;
  }

  /** {@code Σ_{k<terms} a_k ⊗ b_k} of a decomposition of a {@code [i1·i2, o1·o2]} weight. */
  private static double[] sum(KroneckerSvd.Decomposition d, int terms, int i1, int i2, int o1, int o2) {
    double[] w = new double[i1 * i2 * o1 * o2];
    for (int k = 0; k < terms; k++) {
      double[] p = kron(d.a()[k], i1, o1, d.b()[k], i2, o2);
      for (int e = 0; e < w.length; e++) {
        w[e] += p[e];
      }
    }
    return w;
  }

  private static double squaredDistance(double[] x, double[] y) {
    double s = 0;
    for (int i = 0; i < x.length; i++) {
      s += (x[i] - y[i]) * (x[i] - y[i]);
    }
    return s;
  }

  // ------------------------------------------------------------ Kronecker-product SVD

  /**
   * A random {@code W [6, 8]} split {@code 2·3, 2·4}: all terms give W back; the first K terms
   * leave exactly {@code Σ_{k>K} σ_k²} (Eckart–Young on the rearrangement), and each {@code A_k},
   * {@code B_k} carries {@code √σ_k} (unit vectors times it).
   */
  @Test
  void kroneckerSvdReconstructsTheWeightAndItsTruncationsAreOptimal() {
    int i1 = 2, i2 = 3, o1 = 2, o2 = 4;
    double[] w = gaussian(new Random(3), 48);
    KroneckerSvd.Decomposition d = KroneckerSvd.decompose(w, i1, i2, o1, o2);
    assertEquals(4, d.sigma().length, "min(i1·o1, i2·o2) singular values");
    double full = Math.sqrt(squaredDistance(sum(d, 4, i1, i2, o1, o2), w));
    assertTrue(full < 1e-12, "all terms reconstruct W: " + full);
    for (int k = 0; k < 4; k++) {
      double tail = 0;
      for (int j = k; j < 4; j++) {
        tail += d.sigma()[j] * d.sigma()[j];
      }
      double error = squaredDistance(sum(d, k, i1, i2, o1, o2), w);
      assertEquals(tail, error, 1e-10 * (1 + tail), "the error of " + k + " terms");
      if (k > 0) {
        assertTrue(d.sigma()[k - 1] >= d.sigma()[k], "descending " + Arrays.toString(d.sigma()));
      }
      double normA = Math.sqrt(Arrays.stream(d.a()[k]).map(x -> x * x).sum());
      assertEquals(Math.sqrt(d.sigma()[k]), normA, 1e-12, "‖A_k‖ = √σ_k");
    }
    System.out.printf("SokaTest KPSVD of a random [6, 8]: σ = %s, reconstruction error %.3g%n",
        Arrays.toString(d.sigma()), full);
  }

  /** A weight that is exactly two Kronecker products has two non-zero singular values, and two terms give it back. */
  @Test
  void aSumOfTwoKroneckerProductsHasTwoTerms() {
    Random r = new Random(8);
    int i1 = 3, i2 = 2, o1 = 2, o2 = 3;
    double[] w = new double[36];
    for (int t = 0; t < 2; t++) {
      double[] p = kron(gaussian(r, i1 * o1), i1, o1, gaussian(r, i2 * o2), i2, o2);
      for (int e = 0; e < w.length; e++) {
        w[e] += p[e];
      }
    }
    KroneckerSvd.Decomposition d = KroneckerSvd.decompose(w, i1, i2, o1, o2);
    assertTrue(d.sigma()[1] > 1e-3 && d.sigma()[2] < 1e-12, Arrays.toString(d.sigma()));
    assertTrue(squaredDistance(sum(d, 2, i1, i2, o1, o2), w) < 1e-24, "two terms reconstruct W");
    assertEquals(2, KroneckerSvd.terms(d.sigma(), KroneckerSvd.Rule.ENERGY, 0.999999, 8));
  }

  @Test
  void theEnergyThresholdKeepsTheSmallestPrefixHoldingIt() {
    double[] sigma = {4, 2, 1, 0.5, 0.25};  // σ² 16, 4, 1, .25, .0625: total 21.3125
    assertEquals(1, KroneckerSvd.terms(sigma, KroneckerSvd.Rule.ENERGY, 0.5, 8));
    assertEquals(2, KroneckerSvd.terms(sigma, KroneckerSvd.Rule.ENERGY, 0.9, 8));     // 20 / 21.31 = 0.938
    assertEquals(2, KroneckerSvd.terms(sigma, KroneckerSvd.Rule.ENERGY, 20 / 21.3125, 8));
    assertEquals(4, KroneckerSvd.terms(sigma, KroneckerSvd.Rule.ENERGY, 0.99, 8));    // 21 → 0.985, 21.25 → 0.997
    assertEquals(3, KroneckerSvd.terms(sigma, KroneckerSvd.Rule.ENERGY, 0.99, 3), "capped by maxTerms");
    assertEquals(2, KroneckerSvd.terms(new double[] {1, 1, 0, 0}, KroneckerSvd.Rule.ENERGY, 0.99, 8), "zeros never count");
    assertEquals(0, KroneckerSvd.terms(new double[] {0, 0}, KroneckerSvd.Rule.ENERGY, 0.9, 8));
  }

  /** The elbow: the point farthest below the chord from the first to the last value; the terms before it are kept. */
  @Test
  void theElbowKeepsTheTermsBeforeTheKnee() {
    assertEquals(3, KroneckerSvd.terms(new double[] {10, 9, 8, 1, 0.9, 0.8}, KroneckerSvd.Rule.ELBOW, 0, 8));
    assertEquals(1, KroneckerSvd.terms(new double[] {10, 1, 0.9, 0.8, 0.7}, KroneckerSvd.Rule.ELBOW, 0, 8));
    assertEquals(2, KroneckerSvd.terms(new double[] {10, 9, 8, 1, 0.9, 0.8}, KroneckerSvd.Rule.ELBOW, 0, 2), "capped");
    assertEquals(1, KroneckerSvd.terms(new double[] {3, 2, 1}, KroneckerSvd.Rule.ELBOW, 0, 8), "a straight line: one term");
  }

  /** Both (the default): the fewer of the energy and the elbow counts, then the cap. */
  @Test
  void bothKeepsTheFewerOfTheEnergyAndElbowCounts() {
    double[] knee = {10, 9, 8, 1, 0.9, 0.8};  // elbow 3; σ² 100, 81, 64, 1, .81, .64: total 247.45
    assertEquals(2, KroneckerSvd.terms(knee, KroneckerSvd.Rule.ENERGY, 0.5, 8));
    assertEquals(2, KroneckerSvd.terms(knee, KroneckerSvd.Rule.BOTH, 0.5, 8), "energy 2 < elbow 3");
    assertEquals(5, KroneckerSvd.terms(knee, KroneckerSvd.Rule.ENERGY, 0.995, 8));  // 246 / 247.45 = 0.9941
    assertEquals(3, KroneckerSvd.terms(knee, KroneckerSvd.Rule.BOTH, 0.995, 8), "elbow 3 < energy 5");
    assertEquals(2, KroneckerSvd.terms(knee, KroneckerSvd.Rule.BOTH, 0.995, 2), "capped by maxTerms");
    // A spectrum falling in a straight line has its elbow at 1 term; energy 0.9 would keep 6 of 10.
    double[] line = {5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5, 1, 0.5};
    assertEquals(6, KroneckerSvd.terms(line, KroneckerSvd.Rule.ENERGY, 0.9, 8));
    assertEquals(1, KroneckerSvd.terms(line, KroneckerSvd.Rule.BOTH, 0.9, 8));
    double[] spike = {10, 1, 0.9, 0.8, 0.7};  // elbow 1; energy 0.99 keeps 4 (101.81 / 102.94 = 0.989)
    assertEquals(4, KroneckerSvd.terms(spike, KroneckerSvd.Rule.ENERGY, 0.99, 8));
    assertEquals(1, KroneckerSvd.terms(spike, KroneckerSvd.Rule.BOTH, 0.99, 8));
    assertEquals(0, KroneckerSvd.terms(new double[] {0, 0}, KroneckerSvd.Rule.BOTH, 0.9, 8), "nothing to keep");
  }

  // ------------------------------------------------------------ the Kronecker apply

  /**
   * {@code x·Σ_k A_k ⊗ B_k} through the two-MatMul apply equals x times the materialized sum
   * ({@link SokaKind#kroneckerSum}, itself checked against products computed here), x {@code [2,
   * 3, 6]}, K = 3, split {@code 6 = 2·3}, {@code 8 = 2·4}.
   */
  @Test
  void theKroneckerApplyEqualsTheMaterializedProduct() throws OrtException {
    SokaKind.Split s = new SokaKind.Split(2, 3, 2, 4);
    int k = 3;
    Graph g = new Graph();
    g.addInput("x", TensorType.of(D, 2, 3, 6));
    g.addInput("a", TensorType.of(D, k * 2, 2));
    g.addInput("b", TensorType.of(D, 3, k * 4));
    String applied = SokaKind.apply(g, "/t", "x", "a", "b", s, k, g.longs("/t/shape_y", List.of(2L, 3L, 8L)));
    String w = SokaKind.kroneckerSum(g, "/w", "a", "b", s, k);
    g.outputs().add(applied);
    g.outputs().add(w);
    ShapeInference.run(g);
    assertEquals("float64[2, 3, 8]", g.typeOrThrow(applied).toString());
    Random r = new Random(4);
    double[] x = gaussian(r, 36);
    double[] a = gaussian(r, k * 4);
    double[] b = gaussian(r, k * 12);
    Map<String, double[]> out = run(g, Map.of("x", x, "a", a, "b", b),
        Map.of("x", new long[] {2, 3, 6}, "a", new long[] {k * 2, 2}, "b", new long[] {3, k * 4}));
    double[] expected = new double[48];
    for (int t = 0; t < k; t++) {
      double[] at = Arrays.copyOfRange(a, t * 4, t * 4 + 4);
      double[] bt = new double[12];
      for (int row = 0; row < 3; row++) {
        System.arraycopy(b, row * k * 4 + t * 4, bt, row * 4, 4);
      }
      double[] p = kron(at, 2, 2, bt, 3, 4);
      for (int e = 0; e < 48; e++) {
        expected[e] += p[e];
      }
    }
    assertArrayEquals(expected, out.get(w), 1e-12, "Σ A_k ⊗ B_k");
    double[] product = new double[48];
    for (int n = 0; n < 6; n++) {
      for (int j = 0; j < 8; j++) {
        for (int i = 0; i < 6; i++) {
          product[n * 8 + j] += x[n * 6 + i] * expected[i * 8 + j];
        }
      }
    }
    double worst = 0;
    for (int e = 0; e < 48; e++) {
      worst = Math.max(worst, Math.abs(product[e] - out.get(applied)[e]));
    }
    assertTrue(worst < 1e-12, "apply vs materialized: " + worst);
    System.out.printf("SokaTest Kronecker apply vs x·(Σ A⊗B): max |difference| %.3g%n", worst);
  }

  // ------------------------------------------------------------ on the tiny BERT

  /**
   * The tiny BERT with layer 0's key reading the query's weight: that weight has two readers, so
   * SoKA on the query keeps W and subtracts its principal part, where every other site's weight
   * (one reader) gives way to the folded residual.
   */
  private static Graph sharedQueryWeight() {
    Graph g = TinyBertHost.graph(11, D);
    List<LinearSite> sites = LinearSite.find(g);
    LinearSite query = sites.stream().filter(s -> s.node().matches(".*/layer.0/attention/self/query/MatMul")).findFirst().orElseThrow();
    LinearSite key = sites.stream().filter(s -> s.node().matches(".*/layer.0/attention/self/key/MatMul")).findFirst().orElseThrow();
    Node node = g.nodes().stream().filter(n -> n.name().equals(key.node())).findFirst().orElseThrow();
    List<String> inputs = new ArrayList<>(node.inputs());
    inputs.set(inputs.indexOf(key.weight()), query.weight());
    g.replaceNode(node, node.withInputs(inputs));
    g.removeUnused();
    return g;
  }

  /** The initializers named {@code …/W_res} and the nodes of the subtracted principal part ({@code …/kron0/…}) of a graph. */
  private static long[] forms(ModelProto m) {
    long folded = m.getGraph().getInitializerList().stream().filter(t -> t.getName().contains("/W_res")).count();
    long subtracted = m.getGraph().getNodeList().stream().filter(n -> n.getName().contains("/kron0/MatMul_A")).count();
    return new long[] {folded, subtracted};
  }

  /**
   * With the offsets at zero (their init) the logits are the host's with the same head (LoRA with
   * B = 0 as the reference), in both forms: every weight folded into its residual (float64, and
   * float32 within 1e-5), and the shared query weight of {@link #sharedQueryWeight} kept with its
   * principal part subtracted; an offset moved changes them.
   */
  @Test
  void atItsInitialValuesTheOutputIsTheHosts() throws OrtException {
    for (String form : List.of("float64, all folded", "float64, shared query weight subtracted", "float32, all folded")) {
      boolean shared = form.contains("shared");
      boolean single = form.startsWith("float32");
      Graph host = shared ? sharedQueryWeight() : TinyBertHost.graph(11, single ? TensorType.FLOAT : D);
      double[] reference;
      Map<String, double[]> head = new HashMap<>();
      try (WholeStepCheck lora = WholeStepCheck.classification(host, Adapters.of("lora", "", Map.of("rank", 1)))) {
        for (Parameter p : lora.params) {
          if (p.getSite().equals("classifier")) {
            head.put(p.getName(), lora.values.get(p.getName()));
          } else if (p.getName().endsWith("lora_B")) {
            Arrays.fill(lora.values.get(p.getName()), 0);
          }
        }
        reference = lora.inference();
      }
      try (WholeStepCheck soka = WholeStepCheck.classification(host, Adapters.of("soka", "", Map.of()))) {
        // Four sites (query and value of two layers): all folded, or all but the shared query.
        assertArrayEquals(shared ? new long[] {3, 1} : new long[] {4, 0}, forms(soka.graft.inference()), "W_res, kron0");
        assertArrayEquals(shared ? new long[] {3, 1} : new long[] {4, 0}, forms(soka.graft.train()), "W_res, kron0");
        for (Parameter p : soka.params) {
          if (p.getSite().equals("classifier")) {
            soka.values.put(p.getName(), head.get(p.getName()));
          } else {
            Arrays.fill(soka.values.get(p.getName()), 0);
          }
        }
        double[] initial = soka.inference();
        double worst = 0;
        for (int i = 0; i < reference.length; i++) {
          worst = Math.max(worst, Math.abs(reference[i] - initial[i]));
        }
        // float32: W_res is rounded once, the principal part of the kron path in float32 arithmetic.
        assertTrue(worst < (single ? 1e-5 : 1e-12), form + ": initial logits vs the host's: " + worst);
        System.out.printf("SokaTest initial logits vs the host's (%s): max |difference| %.3g (logits %s)%n",
            form, worst, Arrays.toString(initial));
        Parameter first = soka.params.stream().filter(p -> p.getName().endsWith("soka_dA")).findFirst().orElseThrow();
        Arrays.fill(soka.values.get(first.getName()), 0.2);
        double[] moved = soka.inference();
        assertTrue(Math.abs(moved[0] - initial[0]) > 1e-6, "an offset changes the output");
      }
    }
  }

  /**
   * Default sites (query, value; 8 → 8 split 2·4, 2·4, so R(W) is [4, 16]) with the default rule
   * (both), at the elbow and at energy 0.99, all weights folded into their residuals; the
   * feed-forward 8 → 16 with a given split; and the host whose query weight has two readers (its
   * principal part subtracted, the others folded): the whole step's gradients match central
   * differences.
   */
  @Test
  void wholeStepMatchesCentralDifferences() throws OrtException {
    for (Map<String, Object> options : List.<Map<String, Object>>of(
        Map.of(),
        Map.of("rule", "elbow"),
        Map.of("rule", "energy", "energy", 0.99),
        Map.of("inFactor", 4, "outFactor", 2, "energy", 0.99),
        Map.of("shared", true))) {
      String target = options.containsKey("inFactor") ? ".*/(query|intermediate/dense)/MatMul" : "";
      boolean shared = options.containsKey("shared");
      Map<String, Object> declared = shared ? Map.of() : options;
      try (WholeStepCheck check = WholeStepCheck.classification(shared ? sharedQueryWeight() : TinyBertHost.graph(11, D),
          Adapters.of("soka", target, declared))) {
        assertEquals(shared ? 1 : 0, forms(check.graft.train())[1], "sites with the principal part subtracted");
        StringBuilder shapes = new StringBuilder();
        for (Parameter p : check.params) {
          if (p.getName().endsWith("soka_dA")) {
            shapes.append(' ').append(p.getSite()).append(p.getShapeList());
          }
        }
        double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
        assertTrue(worst < 1e-7, "max error " + worst);
        System.out.printf("SokaTest whole step %s: max error %.3g; dA shapes%s%n", options, worst, shapes);
      }
    }
  }

  // ------------------------------------------------------------ errors

  private static List<Diagnostic> errors(Graft graft) {
    return assertThrows(GraftCompileException.class, () -> graft.classification(2).compile()).diagnostics();
  }

  @Test
  void aFactorThatDoesNotDivideIsReported() {
    List<Diagnostic> d = errors(Graft.host(TinyBertHost.host(3)).soka("", o -> o.set("inFactor", 3)));
    assertEquals(ErrorCode.SOKA_FACTOR_MISMATCH, d.get(0).code());
    assertEquals("inFactor", d.get(0).attribute());
    assertTrue(d.get(0).message().startsWith("[GRAFT310] SoKA inFactor 3 does not divide the input width 8 of"),
        d.get(0).message());
    List<Diagnostic> zero = errors(Graft.host(TinyBertHost.host(3)).soka("", o -> o.set("outFactor", 0)));
    assertEquals(ErrorCode.SOKA_FACTOR_MISMATCH, zero.get(0).code());
  }

  @Test
  void aZeroWeightHasNothingToTrainAndIsReported() {
    Graph g = TinyBertHost.graph(3);
    String node = ".*/layer.0/attention/self/query/MatMul";
    String weight = LinearSite.find(g).stream().filter(s -> s.node().matches(node))
        .findFirst().orElseThrow().weight();
    var t = g.initializers().get(weight);
    g.initializers().put(weight, Tensors.floats(weight, t.getDataType(), t.getDimsList(), new double[(int) Tensors.elementCount(t)]));
    List<Diagnostic> d = errors(Graft.host(TinyBertHost.host(g)).soka(node));
    assertEquals(ErrorCode.SOKA_SITE_UNSUPPORTED, d.get(0).code());
    assertTrue(d.get(0).message().contains("is all zeros"), d.get(0).message());
  }

  private static Map<String, double[]> run(Graph g, Map<String, double[]> in, Map<String, long[]> shapes) throws OrtException {
    try (OrtSession s = ENV.createSession(OnnxExport.write(g, "t").toByteArray(), new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      for (var e : in.entrySet()) {
        feeds.put(e.getKey(), OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(e.getValue()), shapes.get(e.getKey())));
      }
      try (OrtSession.Result r = s.run(feeds)) {
        Map<String, double[]> out = new HashMap<>();
        for (String name : g.outputs()) {
          OnnxTensor t = (OnnxTensor) r.get(name).orElseThrow();
          DoubleBuffer b = t.getDoubleBuffer();
          double[] v = new double[b.remaining()];
          b.get(v);
          out.put(name, v);
        }
        return out;
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
  }
}
