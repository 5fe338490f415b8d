package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.LloydMax;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/**
 * Quantized adapters ({@code quantizeBits}) on the float64 tiny BERT. The straight-through step
 * is checked as follows: its forward pass must be the full-precision graft's at the dequantized
 * weights q = μ + σ·Q((w − μ)/(σ + ε)) (computed here in Java from the manifest's levels, with
 * μ, σ fed as the frozen companion parameter the run time keeps), and its
 * gradient at w must be the full-precision graft's gradient at q, which central differences of the
 * full-precision loss at q check in turn. (Central differences of the quantized loss in w are
 * zero almost everywhere and would not test the estimator.)
 */
class QuantizedAdapterTest {
  private static final String QV = ".*/(query|value)/MatMul";

  private static AdapterSpec lora(Map<String, Object> options) {
    return Adapters.of("lora", QV, options);
  }

  /** [μ, σ] of {@code w}: its mean and sample standard deviation (n − 1, as torch.std). */
  static double[] stats(double[] w) {
    double mean = 0;
    for (double x : w) {
      mean += x;
    }
    mean /= w.length;
    double var = 0;
    for (double x : w) {
      var += (x - mean) * (x - mean);
    }
    return new double[] {mean, Math.sqrt(var / (w.length - 1))};
  }

  /** μ + σ·Q((w − μ)/(σ + ε)) with the levels and ε the manifest records. */
  static double[] dequantized(double[] w, double[] stats, Parameter p) {
    double mean = stats[0];
    double std = stats[1];
    double[] levels = p.getQuantizeLevelsList().stream().mapToDouble(Double::doubleValue).toArray();
    double[] q = new double[w.length];
    for (int i = 0; i < w.length; i++) {
      double z = (w[i] - mean) / (std + p.getQuantizeEpsilon());
      int code = 0;
      for (int k = 0; k + 1 < levels.length; k++) {
        if (z > (levels[k] + levels[k + 1]) / 2) {
          code++;
        }
      }
      q[i] = mean + std * levels[code];
    }
    return q;
  }

  @ParameterizedTest
  @ValueSource(ints = {1, 2, 4})
  void straightThroughStepIsTheFullPrecisionStepAtTheDequantizedWeights(int bits) throws OrtException {
    Map<String, Object> options = Map.of("rank", 2, "alpha", 4);
    Map<String, Object> quantized = new HashMap<>(options);
    quantized.put("quantizeBits", bits);
    try (WholeStepCheck q = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE), lora(quantized));
         WholeStepCheck f = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE), lora(options))) {
      f.values.putAll(q.values);
      int count = 0;
      double moved = 0;
      for (Parameter p : q.params) {
        boolean weight = p.getShapeCount() >= 2 && !p.getName().startsWith("classifier");
        assertEquals(weight ? bits : 0, p.getQuantizeBits(), p.getName());
        if (p.getQuantizeBits() > 0) {
          assertEquals(1 << bits, p.getQuantizeLevelsCount());
          assertEquals(1e-5, p.getQuantizeEpsilon());
          // Its frozen companion holds the [μ, σ] the forward pass reads; the run time keeps it.
          Parameter companion = q.params.get(q.params.indexOf(p) + 1);
          assertEquals(p.getName(), companion.getQuantizeStatsOf());
          assertEquals(List.of(2L), companion.getShapeList());
          assertTrue(companion.getFrozen() && companion.getInit() == Init.QUANTIZE_STATS, companion.toString());
          double[] stats = stats(q.values.get(p.getName()));
          q.values.put(companion.getName(), stats);
          f.values.remove(companion.getName());
          double[] dq = dequantized(q.values.get(p.getName()), stats, p);
          for (int i = 0; i < dq.length; i++) {
            moved = Math.max(moved, Math.abs(dq[i] - q.values.get(p.getName())[i]));
          }
          f.values.put(p.getName(), dq);
          count++;
        }
      }
      assertEquals(8, count, "A and B of query and value in two layers");
      assertTrue(moved > 1e-3, "quantization changes the weights: " + moved);
      Set<String> outputs = new LinkedHashSet<>(List.of("loss"));
      q.params.stream().filter(p -> !p.getFrozen()).forEach(p -> outputs.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX));
      Map<String, double[]> qs = q.run(Map.of(), outputs);
      Map<String, double[]> fs = f.run(Map.of(), outputs);
      assertEquals(fs.get("loss")[0], qs.get("loss")[0], 1e-12, "forward: the loss at q");
      double worst = 0;
      for (String name : new TreeMap<>(fs).keySet()) {
        double[] a = qs.get(name);
        double[] b = fs.get(name);
        for (int i = 0; i < a.length; i++) {
          worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
      }
      assertTrue(worst < 1e-12, "straight-through gradient at w = gradient at q; worst " + worst);
      WholeStepCheck.Result r = f.assertGradientsMatch(WholeStepCheck.Tolerance.of(1e-6, 1e-8, 1e-5));
      System.out.printf("quant %d bits: max |STE grad - grad at q| %.3g; FD at q max err %.3g, rel L2 %.3g%n",
          bits, worst, r.maxError(), r.maxRelativeL2());
    }
  }

  @Test
  void stopGradientInTheOpDslPassesValuesAndNoGradient() throws OrtException {
    String target = ".*/layer.0/attention/self/query/MatMul";
    try (WholeStepCheck detached = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
             Adapters.of("test_detached_lora", target, Map.of("rank", 2, "alpha", 4)));
         WholeStepCheck twice = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
             Adapters.of("test_dsl_lora", target, Map.of("rank", 2, "alpha", 8)))) {
      // The same values under each kind's names (A, B, the head's weight and bias, in order).
      for (int i = 0; i < detached.params.size(); i++) {
        twice.values.put(twice.params.get(i).getName(), detached.values.get(detached.params.get(i).getName()));
      }
      String a = detached.params.get(0).getName();
      String a2 = twice.params.get(0).getName();
      assertTrue(a.endsWith(".A") && a2.endsWith(".A"), a + ", " + a2);
      Map<String, double[]> d = detached.run(Map.of(), Set.of("loss", a + GraftCompiler.GRADIENT_SUFFIX));
      Map<String, double[]> t = twice.run(Map.of(), Set.of("loss", a2 + GraftCompiler.GRADIENT_SUFFIX));
      assertEquals(t.get("loss")[0], d.get("loss")[0], 1e-13, "forward: u + stopGradient(u) = 2u");
      double[] gd = d.get(a + GraftCompiler.GRADIENT_SUFFIX);
      double[] gt = t.get(a2 + GraftCompiler.GRADIENT_SUFFIX);
      double norm = 0;
      for (int i = 0; i < gd.length; i++) {
        assertEquals(gt[i] / 2, gd[i], 1e-13, "backward: only u's gradient, element " + i);
        norm += gd[i] * gd[i];
      }
      assertTrue(norm > 1e-12, "a gradient to compare: " + norm);
    }
  }

  @Test
  void bitsOtherThanOneTwoFourOrEightAreAnError() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .lora(QV, l -> l.rank(2).quantizeBits(3)).classification(2).compile());
    Diagnostic d = e.diagnostics().get(0);
    assertEquals(ErrorCode.QUANTIZE_BITS_INVALID, d.code());
    assertEquals("quantizeBits", d.attribute());
    assertEquals("[GRAFT300] LoRA quantizeBits must be 1, 2, 4 or 8 (or 0 for full precision), got 3", d.message());
  }

  @Test
  void hostParameterKindsRefuseQuantization() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .adapter("bitfit", "", a -> a.quantizeBits(1)).classification(2).compile());
    Diagnostic d = e.diagnostics().get(0);
    assertEquals(ErrorCode.QUANTIZE_KIND_REFUSED, d.code(), d.message());
    assertTrue(d.message().startsWith("[GRAFT301] BitFit cannot be quantized: it trains the host's own tensors"), d.message());
  }

  @Test
  void aDeclarationOfVectorsOnlyQuantizesNothing() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .adapter("ia3", "", a -> a.quantizeBits(4)).classification(2).compile());
    Diagnostic d = e.diagnostics().get(0);
    assertEquals(ErrorCode.QUANTIZE_NOTHING, d.code(), d.message());
    assertTrue(d.message().startsWith("[GRAFT302] IA³ with quantizeBits = 4 quantizes nothing: it trains ["), d.message());
  }

  @Test
  void levelsInTheManifestAreTheQuantizers() throws OrtException {
    try (WholeStepCheck q = WholeStepCheck.classification(TinyBertHost.graph(11, TensorType.DOUBLE),
        lora(Map.of("rank", 2, "quantizeBits", 2)))) {
      Parameter a = q.params.get(0);
      assertEquals(List.of(-1.5104, -0.4528, 0.4528, 1.5104), a.getQuantizeLevelsList().stream()
          .map(x -> Math.round(x * 1e4) / 1e4).toList());
      assertEquals(LloydMax.levels(2)[3], a.getQuantizeLevels(3), 0);
    }
  }
}
