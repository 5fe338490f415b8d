package dev.graft.compiler;

import dev.graft.testing.Adapters;

import dev.graft.compiler.passes.AdapterPlacement;
import dev.graft.compiler.plan.PlannedAdapter;

import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.spec.AdapterSpec;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.Parameter;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * Gemm nodes as linear sites: which are found (B a 2-D initializer; in/out read through
 * transB), and that LoRA placed on them computes {@code alpha·x'·(W' + s·A·B) + beta·C}. The
 * gradient through a Gemm site is checked in {@link CnnTrainStepTest} (its {@code fc} site is a
 * Gemm with transB=1 and alpha 0.5) and the Gemm rule itself in ConvGradientRulesTest.
 */
class GemmSiteTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final int F = TensorType.FLOAT;

  private static String weight(Graph g, String name, Random r, long... dims) {
    List<Long> d = new ArrayList<>();
    int n = 1;
    for (long x : dims) {
      d.add(x);
      n *= (int) x;
    }
    double[] v = new double[n];
    for (int i = 0; i < n; i++) {
      v[i] = r.nextGaussian();
    }
    g.addInitializer(Tensors.floats(name, F, d, v), false);
    return name;
  }

  @Test
  void gemmWithInitializerWeightIsALinearSiteWithInAndOutThroughTransB() {
    Random r = new Random(1);
    Graph g = new Graph();
    g.addInput("x", TensorType.of(F, 2, 5));
    g.addInput("w_in", TensorType.of(F, 3, 3));
    String a = g.op("/encoder/layer.1/fc/Gemm", "Gemm", List.of("x", weight(g, "fc.weight", r, 3, 5),
        weight(g, "fc.bias", r, 3)), attr("transB", 1L));
    String b = g.op("/proj/Gemm", "Gemm", List.of("x", weight(g, "proj.weight", r, 5, 4)));
    g.op("/dynamic/Gemm", "Gemm", List.of(a, "w_in"));
    g.op("/out/MatMul", "MatMul", List.of(b, weight(g, "out.weight", r, 4, 6)));
    ShapeInference.run(g);
    List<LinearSite> sites = LinearSite.find(g);
    assertEquals(List.of(
        new LinearSite("/encoder/layer.1/fc/Gemm", "encoder.layer.1.fc", OptionalInt.of(1), "fc.weight", 5, 3, true),
        new LinearSite("/proj/Gemm", "proj", OptionalInt.empty(), "proj.weight", 5, 4, false),
        new LinearSite("/out/MatMul", "out", OptionalInt.empty(), "out.weight", 4, 6, false)), sites);
    assertEquals("fc", sites.get(0).moduleName());
  }

  /**
   * LoRA (rank 2, alpha 4: s = 2) on a Gemm with alpha 0.5 and beta 2, every transpose
   * combination: the output equals {@code 0.5·x'·(W' + s·A·B) + 2·C} computed by hand in double
   * (to 1e-5: float32 sums of 5 terms), and equals the host's output when B is zero.
   */
  @ParameterizedTest(name = "transA {0} transB {1}")
  @CsvSource({"0, 0", "0, 1", "1, 0", "1, 1"})
  void loraOnGemmAddsAlphaTimesTheUpdateAndLeavesCAlone(long transA, long transB) throws OrtException {
    Random r = new Random(3 + 2 * transA + transB);
    int m = 2;
    int k = 5;
    int n = 3;
    Graph g = new Graph();
    g.addInput("x", transA == 1 ? TensorType.of(F, k, m) : TensorType.of(F, m, k));
    String w = transB == 1 ? weight(g, "fc.weight", r, n, k) : weight(g, "fc.weight", r, k, n);
    String c = weight(g, "fc.bias", r, n);
    g.outputs().add(g.op("/fc/Gemm", "Gemm", List.of("x", w, c), attr("transA", transA), attr("transB", transB),
        attr("alpha", 0.5f), attr("beta", 2f)));
    ShapeInference.run(g);
    List<LinearSite> sites = LinearSite.find(g);
    assertEquals(1, sites.size());
    assertEquals(k, sites.get(0).in());
    assertEquals(n, sites.get(0).out());
    AdapterSpec lora = Adapters.lora("/fc/Gemm", 2, 4).withOptions(Map.of("rank", 2, "alpha", 4.0, "dropout", 0.0, "rslora", false,
        "dora", false, "init", "default"));
    List<Parameter> params = AdapterPlacement.place(g, List.of(new PlannedAdapter(lora, new LoraKind(), sites)), GraphVariant.TRAIN, F).parameters();
    assertEquals(List.of("fc.lora_A", "fc.lora_B"), params.stream().map(Parameter::getName).toList());
    ShapeInference.run(g);
    assertEquals("float32[2, 3]", g.typeOrThrow(g.outputs().get(0)).toString());

    float[] x = gaussian(r, m * k);
    float[] a = gaussian(r, k * 2);
    float[] b = gaussian(r, 2 * n);
    double[] wv = Tensors.readDoubles(g.initializers().get(w));
    double[] cv = Tensors.readDoubles(g.initializers().get(c));
    float[] y = run(g, x, a, b, transA, m, k, n);
    float[] host = run(g, x, a, new float[2 * n], transA, m, k, n);
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++) {
        double xw = 0;
        double xab = 0;
        for (int p = 0; p < k; p++) {
          double xi = transA == 1 ? x[p * m + i] : x[i * k + p];
          xw += xi * (transB == 1 ? wv[j * k + p] : wv[p * n + j]);
          for (int q = 0; q < 2; q++) {
            xab += xi * a[p * 2 + q] * b[q * n + j];
          }
        }
        double base = 0.5 * xw + 2 * cv[j];
        assertEquals(base + 0.5 * 2 * xab, y[i * n + j], 1e-5, "y[" + i + "," + j + "]");
        assertEquals(base, host[i * n + j], 1e-5, "host y[" + i + "," + j + "]");
      }
    }
  }

  private static float[] gaussian(Random r, int n) {
    float[] v = new float[n];
    for (int i = 0; i < n; i++) {
      v[i] = (float) r.nextGaussian();
    }
    return v;
  }

  private static float[] run(Graph g, float[] x, float[] a, float[] b, long transA, int m, int k, int n)
      throws OrtException {
    try (OrtSession s = ENV.createSession(OnnxExport.write(g, "gemm").toByteArray(), new OrtSession.SessionOptions())) {
      Map<String, OnnxTensor> feeds = new HashMap<>();
      feeds.put("x", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(x), transA == 1 ? new long[] {k, m} : new long[] {m, k}));
      feeds.put("fc.lora_A", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(a), new long[] {k, 2}));
      feeds.put("fc.lora_B", OnnxTensor.createTensor(ENV, FloatBuffer.wrap(b), new long[] {2, n}));
      try (OrtSession.Result r = s.run(feeds, Set.of(g.outputs().get(0)))) {
        FloatBuffer out = ((OnnxTensor) r.get(0)).getFloatBuffer();
        float[] y = new float[out.remaining()];
        out.get(y);
        return y;
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
  }
}
