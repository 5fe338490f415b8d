package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import dev.graft.compiler.passes.AdapterPlacement;
import dev.graft.compiler.plan.PlannedAdapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.dsl.Graft;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.lora.Ia3Kind;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.lora.LoKrKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.lora.LinearAdapters;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.NodeProto;
import java.nio.DoubleBuffer;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/**
 * LoKr, LoHa, VeRA and IA³: whole training steps against central differences on the float64
 * tiny BERT, each kind's forward values against a hand computation in PEFT's own layout (the
 * saved tensors, {@code [out, in]}), Kronecker products and PEFT's factorization by hand, saved
 * keys and PEFT configs, and the option errors.
 */
class KronHadamardVeraIa3Test {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int D = TensorType.DOUBLE;

  // ------------------------------------------------------------ whole step, float64

  private static double wholeStep(AdapterSpec... adapters) throws OrtException {
    try (WholeStepCheck check = WholeStepCheck.classification(TinyBertHost.graph(11, D), adapters)) {
      double worst = check.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      return worst;
    }
  }

  /** Default sites (query, value); rank 1 decomposes W2 (1 < 4/2), W1 full. */
  @Test
  void lokrWithDecomposedW2MatchesCentralDifferences() throws OrtException {
    wholeStep(Adapters.of("lokr", "", Map.of("rank", 1, "alpha", 2)));
  }

  /** Factor 4 on 8 → 8 and 8 → 16 sites: W1 [4, 4] decomposed at rank 1 (decomposeBoth), W2 full. */
  @Test
  void lokrWithDecomposedW1AndFullW2MatchesCentralDifferences() throws OrtException {
    wholeStep(Adapters.of("lokr", ".*/(query|intermediate/dense)/MatMul",
        Map.of("rank", 1, "alpha", 3, "factor", 4, "decomposeBoth", true)));
  }

  @Test
  void lohaMatchesCentralDifferences() throws OrtException {
    wholeStep(Adapters.of("loha", "", Map.of("rank", 2, "alpha", 4)));
  }

  /** Sites 8 → 8, 8 → 16 and 16 → 8: every site reads a different block of the shared projections. */
  @Test
  void veraMatchesCentralDifferences() throws OrtException {
    wholeStep(Adapters.of("vera", ".*/(query|intermediate/dense|layer.1/output/dense)/MatMul", Map.of("rank", 4)));
  }

  /** Default sites: key and value scale their output, the feed-forward output dense its input. */
  @Test
  void ia3MatchesCentralDifferences() throws OrtException {
    wholeStep(Adapters.of("ia3", "", Map.of()));
  }

  // ------------------------------------------------------------ values by hand

  @Test
  void kroneckerProductEqualsTheHandComputation() throws OrtException {
    Graph g = new Graph();
    g.addInput("a", TensorType.of(D, 2, 3));
    g.addInput("b", TensorType.of(D, 2, 2));
    g.outputs().add(LinearAdapters.kronecker(g, "/t", "a", new long[] {2, 3}, "b", new long[] {2, 2}));
    ShapeInference.run(g);
    assertEquals("float64[4, 6]", g.typeOrThrow(g.outputs().get(0)).toString());
    double[] a = {1, 2, 3, 4, 5, 6};
    double[] b = {0, 1, -1, 2};
    double[] expected = {
        0, 1, 0, 2, 0, 3,
        -1, 2, -2, 4, -3, 6,
        0, 4, 0, 5, 0, 6,
        -4, 8, -5, 10, -6, 12};
    Map<String, double[]> out = run(g, Map.of("a", a, "b", b), Map.of("a", new long[] {2, 3}, "b", new long[] {2, 2}));
    assertArrayEquals(expected, out.get(g.outputs().get(0)), 0);
  }

  @Test
  void factorizationIsPefts() {
    assertArrayEquals(new long[] {16, 16}, LoKrKind.factorization(256, -1));
    assertArrayEquals(new long[] {8, 16}, LoKrKind.factorization(128, -1));
    assertArrayEquals(new long[] {1, 127}, LoKrKind.factorization(127, -1));
    assertArrayEquals(new long[] {4, 32}, LoKrKind.factorization(128, 4));
    assertArrayEquals(new long[] {16, 24}, LoKrKind.factorization(384, -1));
    assertArrayEquals(new long[] {2, 4}, LoKrKind.factorization(8, -1));
    assertArrayEquals(new long[] {32, 48}, LoKrKind.factorization(1536, -1));
  }

  /**
   * A host {@code x [2, 6] → MatMul W1 [6, 4] → Add b1 → MatMul W2 [4, 6] → Add b2} in float64,
   * with the adapter placed on both MatMuls and its parameters set to random values.
   */
  private static final class TwoSites {
    final Graph g = new Graph();
    final Random r = new Random(5);
    final double[] x = gaussian(r, 12);
    final double[] w1 = gaussian(r, 24);
    final double[] b1 = gaussian(r, 4);
    final double[] w2 = gaussian(r, 24);
    final double[] b2 = gaussian(r, 6);
    final Map<String, double[]> values = new LinkedHashMap<>();
    final Map<String, long[]> shapes = new LinkedHashMap<>();
    final List<Parameter> params;

    TwoSites(AdapterKind kind, Map<String, Object> options) {
      g.addInput("x", TensorType.of(D, 2, 6));
      g.addInitializer(Tensors.floats("l0.weight", D, List.of(6L, 4L), w1), false);
      g.addInitializer(Tensors.floats("l0.bias", D, List.of(4L), b1), false);
      g.addInitializer(Tensors.floats("l1.weight", D, List.of(4L, 6L), w2), false);
      g.addInitializer(Tensors.floats("l1.bias", D, List.of(6L), b2), false);
      String h = g.op("/layer.0/l0/Add", "Add", List.of(g.op("/layer.0/l0/MatMul", "MatMul", List.of("x", "l0.weight")), "l0.bias"));
      g.outputs().add(g.op("/layer.1/l1/Add", "Add", List.of(g.op("/layer.1/l1/MatMul", "MatMul", List.of(h, "l1.weight")), "l1.bias")));
      ShapeInference.run(g);
      Map<String, Object> all = new TreeMap<>(options);
      kind.options().forEach(o -> all.putIfAbsent(o.name(), o.defaultValue()));
      AdapterSpec spec = new AdapterSpec(kind.id(), ".*", List.of(), all, null);
      params = AdapterPlacement.place(g, List.of(new PlannedAdapter(spec, kind, LinearSite.find(g))), GraphVariant.INFERENCE, D).parameters();
      ShapeInference.run(g);
      for (Parameter p : params) {
        long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
        shapes.put(p.getName(), shape);
        values.put(p.getName(), gaussian(r, (int) WholeStepCheck.size(p)));
      }
      shapes.put("x", new long[] {2, 6});
      values.put("x", x);
    }

    double[] output() throws OrtException {
      return run(g, values, shapes).get(g.outputs().get(0));
    }

    /** A parameter as PEFT stores it: its saved shape, transposed where the manifest says so. */
    double[] saved(String name) {
      Parameter p = params.stream().filter(q -> q.getName().equals(name)).findFirst().orElseThrow();
      double[] v = values.get(name);
      return p.getSaveTransposed() ? transpose(v, (int) p.getShape(0), (int) p.getShape(1)) : v;
    }
  }

  /** {@code y = x·W + b + x·ΔWᵀ} with ΔW {@code [out, in]} in PEFT's layout; x [rows, in]. */
  private static double[] linear(double[] x, int rows, double[] w, double[] b, double[] deltaOutIn, int in, int out) {
    double[] y = new double[rows * out];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < out; j++) {
        double s = b[j];
        for (int k = 0; k < in; k++) {
          s += x[i * in + k] * (w[k * out + j] + (deltaOutIn == null ? 0 : deltaOutIn[j * in + k]));
        }
        y[i * out + j] = s;
      }
    }
    return y;
  }

  private static double[] matmul(double[] a, double[] b, int n, int k, int m) {
    double[] c = new double[n * m];
    for (int i = 0; i < n; i++) {
      for (int j = 0; j < m; j++) {
        for (int p = 0; p < k; p++) {
          c[i * m + j] += a[i * k + p] * b[p * m + j];
        }
      }
    }
    return c;
  }

  private static double[] kron(double[] a, int p, int q, double[] b, int r, int s) {
    double[] c = new double[p * r * q * s];
    for (int i = 0; i < p; i++) {
      for (int j = 0; j < q; j++) {
        for (int k = 0; k < r; k++) {
          for (int l = 0; l < s; l++) {
            c[(i * r + k) * (q * s) + j * s + l] = a[i * q + j] * b[k * s + l];
          }
        }
      }
    }
    return c;
  }

  private static double[] scale(double[] v, double s) {
    double[] o = v.clone();
    for (int i = 0; i < o.length; i++) {
      o[i] *= s;
    }
    return o;
  }

  /**
   * LoKr rank 1, alpha 3, factor 2: 6 = 2·3 and 4 = 2·2, so site 0 (6 → 4) has w1 [2, 2] and w2
   * [2, 3] (rank 1 < 3/2: w2 = w2_a·w2_b), site 1 (4 → 6) w1 [2, 2] and w2 [3, 2]; ΔW = 3·w1 ⊗
   * w2 in PEFT's [out, in].
   */
  @Test
  void lokrComputesPeftsKroneckerUpdate() throws OrtException {
    TwoSites t = new TwoSites(new LoKrKind(), Map.of("rank", 1, "alpha", 3.0, "factor", 2));
    assertEquals(List.of("layer.0.l0.lokr_w1", "layer.0.l0.lokr_w2_b", "layer.0.l0.lokr_w2_a",
        "layer.1.l1.lokr_w1", "layer.1.l1.lokr_w2_b", "layer.1.l1.lokr_w2_a"),
        t.params.stream().map(Parameter::getName).toList());
    double[] d0 = scale(kron(t.saved("layer.0.l0.lokr_w1"), 2, 2,
        matmul(t.saved("layer.0.l0.lokr_w2_a"), t.saved("layer.0.l0.lokr_w2_b"), 2, 1, 3), 2, 3), 3);
    double[] d1 = scale(kron(t.saved("layer.1.l1.lokr_w1"), 2, 2,
        matmul(t.saved("layer.1.l1.lokr_w2_a"), t.saved("layer.1.l1.lokr_w2_b"), 3, 1, 2), 3, 2), 3);
    double[] h = linear(t.x, 2, t.w1, t.b1, d0, 6, 4);
    assertArrayEquals(linear(h, 2, t.w2, t.b2, d1, 4, 6), t.output(), 1e-12);
  }

  /** LoHa rank 2, alpha 6: ΔW = 3 · (w1_a·w1_b) ⊙ (w2_a·w2_b) in PEFT's [out, in]. */
  @Test
  void lohaComputesPeftsHadamardUpdate() throws OrtException {
    TwoSites t = new TwoSites(new dev.graft.compiler.kinds.lora.LoHaKind(), Map.of("rank", 2, "alpha", 6.0));
    double[][] deltas = new double[2][];
    String[] sites = {"layer.0.l0", "layer.1.l1"};
    int[][] dims = {{6, 4}, {4, 6}};
    for (int s = 0; s < 2; s++) {
      int in = dims[s][0];
      int out = dims[s][1];
      double[] p1 = matmul(t.saved(sites[s] + ".hada_w1_a"), t.saved(sites[s] + ".hada_w1_b"), out, 2, in);
      double[] p2 = matmul(t.saved(sites[s] + ".hada_w2_a"), t.saved(sites[s] + ".hada_w2_b"), out, 2, in);
      deltas[s] = new double[out * in];
      for (int i = 0; i < deltas[s].length; i++) {
        deltas[s][i] = 3 * p1[i] * p2[i];
      }
    }
    double[] h = linear(t.x, 2, t.w1, t.b1, deltas[0], 6, 4);
    assertArrayEquals(linear(h, 2, t.w2, t.b2, deltas[1], 4, 6), t.output(), 1e-12);
  }

  /**
   * VeRA rank 3: one vera_A [3, 6] and vera_B [6, 3] (PEFT's layout) for both sites; site 0 (6 →
   * 4) reads A[:, :6] and B[:4, :], site 1 (4 → 6) A[:, :4] and B[:6, :]; ΔW = diag(λ_b)·B·diag(λ_d)·A.
   */
  @Test
  void veraComputesPeftsUpdateFromSlicesOfOneSharedPair() throws OrtException {
    TwoSites t = new TwoSites(new dev.graft.compiler.kinds.lora.VeraKind(), Map.of("rank", 3));
    assertEquals(List.of("vera_A", "vera_B", "layer.0.l0.vera_lambda_d", "layer.0.l0.vera_lambda_b",
        "layer.1.l1.vera_lambda_d", "layer.1.l1.vera_lambda_b"), t.params.stream().map(Parameter::getName).toList());
    Parameter a = t.params.get(0);
    assertTrue(a.getFrozen() && t.params.get(1).getFrozen(), "projections frozen");
    assertEquals(List.of(3L, 6L), a.getSaveShapeList());
    assertEquals(Init.UNIFORM, a.getInit());
    assertEquals(Math.sqrt(6.0 / 6), a.getInitScale(), 1e-15);
    assertEquals(Math.sqrt(6.0 / 3), t.params.get(1).getInitScale(), 1e-15);
    double[] va = t.saved("vera_A");
    double[] vb = t.saved("vera_B");
    String[] sites = {"layer.0.l0", "layer.1.l1"};
    int[][] dims = {{6, 4}, {4, 6}};
    double[][] deltas = new double[2][];
    for (int s = 0; s < 2; s++) {
      int in = dims[s][0];
      int out = dims[s][1];
      double[] ld = t.values.get(sites[s] + ".vera_lambda_d");
      double[] lb = t.values.get(sites[s] + ".vera_lambda_b");
      deltas[s] = new double[out * in];
      for (int o = 0; o < out; o++) {
        for (int i = 0; i < in; i++) {
          double sum = 0;
          for (int k = 0; k < 3; k++) {
            sum += vb[o * 3 + k] * ld[k] * va[k * 6 + i];
          }
          deltas[s][o * in + i] = lb[o] * sum;
        }
      }
    }
    double[] h = linear(t.x, 2, t.w1, t.b1, deltas[0], 6, 4);
    assertArrayEquals(linear(h, 2, t.w2, t.b2, deltas[1], 4, 6), t.output(), 1e-12);
  }

  /** IA³ with site 1 feed-forward: site 0 scales its biased output by l [4], site 1 its input by l [4] (its in). */
  @Test
  void ia3ScalesOutputsAndFeedForwardInputs() throws OrtException {
    TwoSites t = new TwoSites(new Ia3Kind(), Map.of("feedforward", ".*/l1/MatMul"));
    Parameter l0 = t.params.get(0);
    Parameter l1 = t.params.get(1);
    assertEquals(List.of(4L), l0.getShapeList());
    assertEquals(List.of(4L, 1L), l0.getSaveShapeList());
    assertEquals(List.of(4L), l1.getShapeList());
    assertEquals(List.of(1L, 4L), l1.getSaveShapeList());
    assertTrue(l0.getNoDecay() && l1.getNoDecay() && l0.getInit() == Init.ONES);
    double[] h = linear(t.x, 2, t.w1, t.b1, null, 6, 4);
    double[] la = t.values.get(l0.getName());
    double[] lb = t.values.get(l1.getName());
    for (int i = 0; i < h.length; i++) {
      h[i] *= la[i % 4] * lb[i % 4];
    }
    assertArrayEquals(linear(h, 2, t.w2, t.b2, null, 4, 6), t.output(), 1e-12);
  }

  /**
   * Each kind on a Gemm with transA=1, transB=1, alpha 0.5 and beta 2 against the same kind on
   * the equivalent MatMul + Add site (x pre-transposed, W transposed and halved, bias doubled):
   * IA³ gives the same output (it scales the whole output, or the input); the additive kinds add
   * alpha times their update, as LoRA does on a Gemm.
   */
  @Test
  void everyKindOnAGemmSiteMatchesItsMatMulForm() throws OrtException {
    Random r = new Random(9);
    double[] x = gaussian(r, 12);
    double[] w = gaussian(r, 24);
    double[] c = gaussian(r, 4);
    Map<String, Map<String, Object>> kinds = new LinkedHashMap<>();
    kinds.put("lokr", Map.of("rank", 1, "factor", 2));
    kinds.put("loha", Map.of("rank", 2));
    kinds.put("vera", Map.of("rank", 3));
    kinds.put("ia3", Map.of());
    kinds.put("ia3 feedforward", Map.of("feedforward", ".*"));
    for (var e : kinds.entrySet()) {
      AdapterKind kind = AdapterKinds.byId(e.getKey().split(" ")[0]).orElseThrow();
      double[][] outputs = new double[4][];
      Map<String, double[]> values = new HashMap<>();
      for (int form = 0; form < 4; form++) {
        boolean gemm = form < 2;
        boolean adapted = form % 2 == 0;
        Graph g = new Graph();
        Map<String, long[]> shapes = new HashMap<>();
        Map<String, double[]> feeds = new HashMap<>(values);
        if (gemm) {
          g.addInput("x", TensorType.of(D, 6, 2));
          g.addInitializer(Tensors.floats("w", D, List.of(4L, 6L), w), false);
          g.addInitializer(Tensors.floats("c", D, List.of(4L), c), false);
          g.outputs().add(g.op("/l0/Gemm", "Gemm", List.of("x", "w", "c"), dev.graft.compiler.ir.Node.attr("transA", 1L),
              dev.graft.compiler.ir.Node.attr("transB", 1L), dev.graft.compiler.ir.Node.attr("alpha", 0.5f),
              dev.graft.compiler.ir.Node.attr("beta", 2f)));
          shapes.put("x", new long[] {6, 2});
          feeds.put("x", x);
        } else {
          g.addInput("x", TensorType.of(D, 2, 6));
          g.addInitializer(Tensors.floats("w", D, List.of(6L, 4L), scale(transpose(w, 4, 6), 0.5)), false);
          g.addInitializer(Tensors.floats("c", D, List.of(4L), scale(c, 2)), false);
          g.outputs().add(g.op("/l0/Add", "Add", List.of(g.op("/l0/MatMul", "MatMul", List.of("x", "w")), "c")));
          shapes.put("x", new long[] {2, 6});
          feeds.put("x", transpose(x, 6, 2));
        }
        ShapeInference.run(g);
        if (adapted) {
          Map<String, Object> all = new TreeMap<>(e.getValue());
          kind.options().forEach(o -> all.putIfAbsent(o.name(), o.defaultValue()));
          AdapterSpec spec = new AdapterSpec(kind.id(), ".*", List.of(), all, null);
          for (Parameter p : AdapterPlacement.place(g, List.of(new PlannedAdapter(spec, kind, LinearSite.find(g))), GraphVariant.INFERENCE, D)
              .parameters()) {
            shapes.put(p.getName(), p.getShapeList().stream().mapToLong(Long::longValue).toArray());
            values.computeIfAbsent(p.getName(), k -> gaussian(r, WholeStepCheck.size(p)));
            feeds.put(p.getName(), values.get(p.getName()));
          }
          ShapeInference.run(g);
        }
        outputs[form] = run(g, feeds, shapes).get(g.outputs().get(0));
      }
      assertArrayEquals(outputs[3], outputs[1], 1e-12, e.getKey() + ": the two host forms agree");
      for (int i = 0; i < 8; i++) {
        double gemmDelta = outputs[0][i] - outputs[1][i];
        double matmulDelta = outputs[2][i] - outputs[3][i];
        if (kind.id().equals("ia3")) {
          assertEquals(outputs[2][i], outputs[0][i], 1e-12, e.getKey() + " y[" + i + "]");
        } else {
          assertEquals(0.5 * matmulDelta, gemmDelta, 1e-12, e.getKey() + " update[" + i + "]");
        }
        assertTrue(Math.abs(matmulDelta) > 1e-3, e.getKey() + " changes y[" + i + "]");
      }
    }
  }

  // ------------------------------------------------------------ manifests, keys, configs

  private static Manifest manifest(String kind, String target, Map<String, Object> options) {
    return Graft.host(TinyBertHost.host(3)).adapter(kind, target, o -> options.forEach(o::set)).classification(2)
        .compile().manifest();
  }

  private static Map<String, List<Long>> saved(Manifest m) {
    Map<String, List<Long>> out = new TreeMap<>();
    m.getParametersList().stream().filter(p -> p.getAdapter() > 0 && !p.getSaveKey().isEmpty())
        .forEach(p -> out.put(p.getSaveKey(), p.getSaveShapeList()));
    return out;
  }

  private static JsonObject config(Manifest m) {
    return JsonParser.parseString(m.getAdapterConfig()).getAsJsonObject();
  }

  private static final String Q0 = "base_model.model.encoder.layer.0.attention.self.query.";

  @Test
  void lokrSavesPeftsKeysShapesAndConfig() {
    Manifest m = manifest("lokr", "", Map.of("rank", 1));
    assertEquals(List.of("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
        "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"), m.getAdapters(0).getSitesList());
    Map<String, List<Long>> keys = saved(m);
    assertEquals(12, keys.size());
    assertEquals(List.of(2L, 2L), keys.get(Q0 + "lokr_w1"));
    assertEquals(List.of(4L, 1L), keys.get(Q0 + "lokr_w2_a"));
    assertEquals(List.of(1L, 4L), keys.get(Q0 + "lokr_w2_b"));
    JsonObject c = config(m);
    assertEquals("LOKR", c.get("peft_type").getAsString());
    assertEquals(1, c.get("r").getAsInt());
    assertEquals("8", c.get("alpha").toString());
    assertEquals(-1, c.get("decompose_factor").getAsInt());
    assertEquals(false, c.get("decompose_both").getAsBoolean());
    assertEquals(4, c.getAsJsonArray("target_modules").size());
    assertEquals("encoder.layer.0.attention.self.query", c.getAsJsonArray("target_modules").get(0).getAsString());
    assertEquals("[\"classifier\"]", c.get("modules_to_save").toString());
  }

  @Test
  void lohaSavesPeftsKeysShapesAndConfig() {
    Manifest m = manifest("loha", "", Map.of("rank", 2, "alpha", 4));
    Map<String, List<Long>> keys = saved(m);
    assertEquals(16, keys.size());
    assertEquals(List.of(8L, 2L), keys.get(Q0 + "hada_w1_a"));
    assertEquals(List.of(2L, 8L), keys.get(Q0 + "hada_w1_b"));
    assertEquals(List.of(8L, 2L), keys.get(Q0 + "hada_w2_a"));
    assertEquals(List.of(2L, 8L), keys.get(Q0 + "hada_w2_b"));
    Parameter zero = m.getParametersList().stream().filter(p -> p.getName().endsWith("hada_w2_b")).findFirst().orElseThrow();
    assertEquals(Init.ZEROS, zero.getInit());
    JsonObject c = config(m);
    assertEquals("LOHA", c.get("peft_type").getAsString());
    assertEquals(2, c.get("r").getAsInt());
    assertEquals(4, c.get("alpha").getAsInt());
  }

  @Test
  void veraSharesOneFrozenPairAndSavesPeftsKeysAndConfig() {
    Manifest m = manifest("vera", "", Map.of("rank", 4));
    List<Parameter> shared = m.getParametersList().stream().filter(p -> p.getName().startsWith("vera_")).toList();
    assertEquals(List.of("vera_A", "vera_B"), shared.stream().map(Parameter::getName).toList());
    assertTrue(shared.stream().allMatch(Parameter::getFrozen));
    Map<String, List<Long>> keys = saved(m);
    assertEquals(List.of(4L, 8L), keys.get("base_model.vera_A"));
    assertEquals(List.of(8L, 4L), keys.get("base_model.vera_B"));
    assertEquals(List.of(8L), keys.get(Q0 + "vera_lambda_b"));
    assertEquals(List.of(4L), keys.get(Q0 + "vera_lambda_d"));
    assertEquals(10, keys.size());
    JsonObject c = config(m);
    assertEquals("VERA", c.get("peft_type").getAsString());
    assertEquals(4, c.get("r").getAsInt());
    assertEquals(0.1, c.get("d_initial").getAsDouble());
    assertTrue(c.get("save_projection").getAsBoolean());

    Manifest unsaved = manifest("vera", "", Map.of("rank", 4, "saveProjection", false));
    assertEquals(8, saved(unsaved).size(), "projections not saved");
    assertEquals("GRAFT", config(unsaved).get("peft_type").getAsString());
  }

  @Test
  void veraProjectionsAreTheSameGraphInputAtEverySiteAndPassThroughTheStep() {
    CompiledGraft graft = Graft.host(TinyBertHost.host(3)).vera("", o -> o.rank(4)).classification(2).compile();
    long readers = graft.inference().getGraph().getNodeList().stream()
        .filter(n -> n.getOpType().equals("MatMul") && n.getInput(1).equals("vera_A")).count();
    assertEquals(4, readers, "the four sites' down-projections read the one vera_A");
    assertEquals(1, graft.inference().getGraph().getInputList().stream().filter(i -> i.getName().equals("vera_A")).count());
    // The step outputs the frozen projections unchanged: an Identity of the input, not an AdamW update.
    for (String p : List.of("vera_A", "vera_B")) {
      String updated = p + graft.manifest().getTrain().getUpdatedSuffix();
      NodeProto producer = graft.train().getGraph().getNodeList().stream()
          .filter(n -> n.getOutputList().contains(updated)).findFirst().orElseThrow();
      assertEquals("Identity", producer.getOpType());
      assertEquals(List.of(p), producer.getInputList());
    }
  }

  @Test
  void ia3DefaultSitesAreKeyValueAndTheFeedForwardOutput() {
    Manifest m = manifest("ia3", "", Map.of());
    assertEquals(List.of("encoder.layer.0.attention.self.key", "encoder.layer.0.attention.self.value",
        "encoder.layer.0.output.dense", "encoder.layer.1.attention.self.key", "encoder.layer.1.attention.self.value",
        "encoder.layer.1.output.dense"), m.getAdapters(0).getSitesList());
    Map<String, List<Long>> keys = saved(m);
    assertEquals(List.of(8L, 1L), keys.get("base_model.model.encoder.layer.0.attention.self.key.ia3_l"));
    assertEquals(List.of(1L, 16L), keys.get("base_model.model.encoder.layer.0.output.dense.ia3_l"));
    JsonObject c = config(m);
    assertEquals("IA3", c.get("peft_type").getAsString());
    assertEquals(6, c.getAsJsonArray("target_modules").size());
    assertEquals("[\"encoder.layer.0.output.dense\",\"encoder.layer.1.output.dense\"]",
        c.get("feedforward_modules").toString());
  }

  @Test
  void kindsAreRegisteredWithTheirAnnotations() {
    for (String id : List.of("lokr", "loha", "vera", "ia3")) {
      AdapterKind k = AdapterKinds.byId(id).orElseThrow();
      assertEquals(k, AdapterKinds.byAnnotation(k.annotation()).orElseThrow());
    }
    AdapterOption ff = new Ia3Kind().options().get(0);
    assertEquals(Ia3Kind.FEEDFORWARD, ff.defaultValue());
  }

  // ------------------------------------------------------------ errors

  private static List<Diagnostic> errors(Graft graft) {
    return assertThrows(GraftCompileException.class, () -> graft.classification(2).compile()).diagnostics();
  }

  @Test
  void lokrFactorThatDoesNotDivideIsReported() {
    List<Diagnostic> d = errors(Graft.host(TinyBertHost.host(3)).lokr("", o -> o.factor(3)));
    assertEquals(List.of(ErrorCode.ADAPTER_OPTIONS_INVALID), d.stream().map(Diagnostic::code).toList());
    assertTrue(d.get(0).message().contains("LoKr options do not fit the host: factor 3 does not divide the site dimensions [8]"),
        d.get(0).message());
    List<Diagnostic> zero = errors(Graft.host(TinyBertHost.host(3)).lokr("", o -> o.factor(0)));
    assertTrue(zero.get(0).message().contains("factor must be -1 (near-square split) or positive, got 0"), zero.get(0).message());
    List<Diagnostic> range = errors(Graft.host(TinyBertHost.host(3)).lokr("", o -> o.factor(-2)));
    assertEquals(ErrorCode.OPTION_OUT_OF_RANGE, range.get(0).code());
  }

  @Test
  void badOptionsOfEveryKindAreReported() {
    assertEquals(ErrorCode.OPTION_OUT_OF_RANGE, errors(Graft.host(TinyBertHost.host(3)).vera("", o -> o.rank(0))).get(0).code());
    assertEquals(ErrorCode.OPTION_NOT_POSITIVE, errors(Graft.host(TinyBertHost.host(3)).vera("", o -> o.dInitial(0))).get(0).code());
    assertEquals(ErrorCode.OPTION_NOT_A_PROBABILITY, errors(Graft.host(TinyBertHost.host(3)).loha("", o -> o.dropout(1))).get(0).code());
    List<Diagnostic> ff = errors(Graft.host(TinyBertHost.host(3)).ia3("", o -> o.feedforward("(")));
    assertEquals(ErrorCode.ADAPTER_OPTIONS_INVALID, ff.get(0).code());
    assertTrue(ff.get(0).message().contains("IA³ options do not fit the host: feedforward selector '(' is not a valid"),
        ff.get(0).message());
    List<Diagnostic> overlap = errors(Graft.host(TinyBertHost.host(3)).lokr("").ia3(".*/value/MatMul"));
    assertEquals(ErrorCode.SITES_OVERLAP, overlap.get(0).code());
  }

  // ------------------------------------------------------------ helpers

  private static double[] gaussian(Random r, int n) {
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = r.nextGaussian();
    }
    return v;
  }

  private static double[] transpose(double[] v, int rows, int cols) {
    double[] t = new double[v.length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < cols; j++) {
        t[j * rows + i] = v[i * cols + j];
      }
    }
    return t;
  }

  private static Map<String, double[]> run(Graph g, Map<String, double[]> values, Map<String, long[]> shapes)
      throws OrtException {
    try (OrtSession s = ENV.createSession(OnnxExport.write(g, "t").toByteArray(), new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      try {
        for (String name : s.getInputNames()) {
          feeds.put(name, OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(values.get(name)), shapes.get(name)));
        }
        try (OrtSession.Result r = s.run(feeds, Set.copyOf(g.outputs()))) {
          Map<String, double[]> out = new HashMap<>();
          for (String o : g.outputs()) {
            DoubleBuffer b = ((OnnxTensor) r.get(o).orElseThrow()).getDoubleBuffer();
            double[] d = new double[b.remaining()];
            b.get(d);
            out.put(o, d);
          }
          return out;
        }
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
  }
}
