package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.Feed;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.Parameter;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * LT-SFT's parameterization {@code W + Δ} on the float64 tiny BERT: the phase-2 step (a sparse
 * update mask fed) against central differences, and one step from random moments changing only
 * the masked entries of Δ and their moments.
 */
class SparseFineTuningKindTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);
  private static final String TARGET = ".*layer\\.[0-9]+/output/dense/MatMul";

  /** A random mask of about a quarter of each Δ's entries, fed to the step. */
  private static Map<String, boolean[]> feedMasks(WholeStepCheck c) {
    Random r = new Random(4);
    Map<String, boolean[]> masks = new HashMap<>();
    for (Parameter p : c.params) {
      if (!p.getUpdateMask().isEmpty()) {
        boolean[] m = new boolean[WholeStepCheck.size(p)];
        for (int i = 0; i < m.length; i++) {
          m[i] = r.nextInt(4) == 0;
        }
        masks.put(p.getName(), m);
        c.batch.put(p.getUpdateMask(), Feed.bools(m, WholeStepCheck.shape(p)));
      }
    }
    return masks;
  }

  @Test
  void phaseTwoStepMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("ltsft", TARGET, Map.of()))) {
      Map<String, boolean[]> masks = feedMasks(c);
      assertEquals(2, masks.size(), "one Δ per feed-forward output: " + masks.keySet());
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("ltsft phase-2 step: max FD error %.3g%n", worst);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void aPhaseTwoStepChangesOnlyTheMaskedEntries() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("ltsft", TARGET, Map.of()))) {
      Map<String, boolean[]> masks = feedMasks(c);
      WholeStepCheck.State before = c.randomMoments(2);
      Map<String, double[]> out = c.run(c.batch, before, 2, 0.01, c.updateOutputs());
      int moved = 0;
      for (Map.Entry<String, boolean[]> e : masks.entrySet()) {
        String n = e.getKey();
        for (int i = 0; i < e.getValue().length; i++) {
          boolean same = WholeStepCheck.unchanged(out, before, n, i);
          assertEquals(!e.getValue()[i], same, n + "[" + i + "]");
          moved += same ? 0 : 1;
        }
      }
      System.out.printf("ltsft phase-2 step: %d masked entries moved%n", moved);
    }
  }

  /** Entries of {@code HOST}'s float64 initializers but its scalar constants: the N of the L1 term's λ / N. */
  private static long hostParameters() {
    long n = 0;
    for (dev.graft.spec.onnx.Onnx.TensorProto t : HOST.initializers().values()) {
      if (t.getDataType() == TensorType.DOUBLE && t.getDimsCount() > 0) {
        n += t.getDimsList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b);
      }
    }
    return n;
  }

  @Test
  void theL1PullAddsLambdaOverNTimesTheSignOfDeltaToItsGradient() throws OrtException {
    double lambda = 20;
    try (WholeStepCheck plain = WholeStepCheck.classification(HOST, Adapters.of("ltsft", TARGET, Map.of()));
        WholeStepCheck pulled = WholeStepCheck.classification(HOST, Adapters.of("ltsft", TARGET, Map.of("l1Reg", lambda)))) {
      feedMasks(plain);
      feedMasks(pulled);
      double weight = lambda / hostParameters();
      java.util.Set<String> outputs = new java.util.LinkedHashSet<>(java.util.List.of("loss"));
      double sumAbs = 0;
      for (Parameter p : pulled.params) {
        outputs.add(p.getName() + GraftCompiler.GRADIENT_SUFFIX);
        if (!p.getUpdateMask().isEmpty()) {
          outputs.add(p.getName() + ".l1");
        }
      }
      Map<String, double[]> without = plain.run(Map.of(), java.util.Set.copyOf(outputs.stream()
          .filter(o -> !o.endsWith(".l1")).toList()));
      Map<String, double[]> with = pulled.run(Map.of(), outputs);
      int pulledEntries = 0;
      for (Parameter p : pulled.params) {
        String n = p.getName();
        double[] g0 = without.get(n + GraftCompiler.GRADIENT_SUFFIX);
        double[] g1 = with.get(n + GraftCompiler.GRADIENT_SUFFIX);
        double[] v = pulled.values.get(n);
        boolean masked = !p.getUpdateMask().isEmpty();
        double abs = 0;
        for (int i = 0; i < v.length; i++) {
          double expected = masked ? weight * Math.signum(v[i]) : 0;
          assertEquals(expected, g1[i] - g0[i], 1e-12, n + "[" + i + "]");
          abs += Math.abs(v[i]);
          pulledEntries += masked && v[i] != 0 ? 1 : 0;
        }
        if (masked) {
          assertEquals(abs, with.get(n + ".l1")[0], 1e-9 * abs, n + ".l1 reports Σ|Δ|");
          sumAbs += abs;
        }
      }
      assertTrue(pulledEntries > 0);
      assertEquals(weight * sumAbs, with.get("loss")[0] - without.get("loss")[0], 1e-12, "loss difference");
      System.out.printf("ltsft l1Reg %.0f: N %d, λ/N %.4g, Σ|Δ| %.4f, %d entries pulled%n", lambda,
          hostParameters(), weight, sumAbs, pulledEntries);
    }
  }

  @Test
  void theStepWithTheL1PullMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("ltsft", TARGET, Map.of("l1Reg", 20.0)))) {
      feedMasks(c);
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("ltsft phase-2 step with l1Reg 20: max FD error %.3g%n", worst);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void dataParallelGraphsAreRefusedWithACode() {
    HostModel host = HostModel.of("tiny", dev.graft.compiler.ir.OnnxExport.write(TinyBertHost.graph(7), "tiny"));
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> dev.graft.dsl.Graft.host(host)
        .name("SparseDp").sparseFineTuning(TARGET).classification(2).compile(GraphVariant.GRADIENT));
    assertTrue(e.getMessage().contains("[GRAFT330] data-parallel training"), e.getMessage());
  }
}
