package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The training step's finite guard ({@code TrainStep.finite}): a bool scalar that is true exactly
 * when the loss and every updated parameter and moment are finite, computed after every other node
 * so the step's values are unchanged; and the manifest's attention-mask flag.
 */
class FiniteGuardTest {
  private static final AdapterSpec LORA = Adapters.lora(".*/(query|value)/MatMul", 2, 4);

  private static WholeStepCheck fixture() throws Exception {
    WholeStepCheck f = WholeStepCheck.classification(TinyBertHost.graph(2024), LORA);
    f.randomize(11, p -> 0, p -> p.getRole() == ParameterRole.HEAD_BIAS ? 0.1 : 0.5);
    return f;
  }

  private static String head(WholeStepCheck f) {
    return f.params.stream().filter(p -> p.getRole() == ParameterRole.HEAD_WEIGHT).findFirst().orElseThrow().getName();
  }

  private static String loraB(WholeStepCheck f) {
    return f.params.stream().filter(p -> p.getRole() == ParameterRole.LORA_B).findFirst().orElseThrow().getName();
  }

  @Test
  void theGuardIsTheLastOutputAndItsNodesComeAfterEveryOther() throws Exception {
    try (WholeStepCheck f = fixture()) {
      assertEquals("finite", f.graft.manifest().getTrain().getFinite());
      List<String> outputs = f.graft.train().getGraph().getOutputList().stream().map(o -> o.getName()).toList();
      assertEquals("finite", outputs.get(outputs.size() - 1));
      List<NodeProto> nodes = f.graft.train().getGraph().getNodeList();
      int first = 0;
      while (!nodes.get(first).getName().startsWith("/finite/")) {
        first++;
      }
      for (int i = first; i < nodes.size(); i++) {
        assertTrue(nodes.get(i).getName().startsWith("/finite/"), "node " + i + " " + nodes.get(i).getName());
      }
      // loss + 3 tensors per parameter, each x - x then summed, one Sum, IsNaN, Not
      int guarded = 1 + 3 * f.params.size();
      assertEquals(2 * guarded + 3, nodes.size() - first);
    }
  }

  @Test
  void theGuardIsTrueForAnOrdinaryStep() throws Exception {
    try (WholeStepCheck f = fixture()) {
      Map<String, double[]> out = f.run(Map.of(), Set.of("loss", "finite"));
      assertTrue(Double.isFinite(out.get("loss")[0]));
      assertEquals(1.0, out.get("finite")[0]);
      // large values that overflow nothing keep it true
      double[] b = f.values.get(loraB(f)).clone();
      Arrays.fill(b, 100);
      assertEquals(1.0, f.run(Map.of(loraB(f), b), Set.of("finite")).get("finite")[0]);
    }
  }

  @Test
  void theGuardIsFalseWhenTheLossIsNaN() throws Exception {
    try (WholeStepCheck f = fixture()) {
      double[] w = f.values.get(head(f)).clone();
      w[0] = Double.NaN;
      Map<String, double[]> out = f.run(Map.of(head(f), w), Set.of("loss", "finite"));
      assertTrue(Double.isNaN(out.get("loss")[0]), "loss " + out.get("loss")[0]);
      assertEquals(0.0, out.get("finite")[0]);
    }
  }

  @Test
  void theGuardIsFalseWhenOnlyTheUpdatedStateIsNotFinite() throws Exception {
    try (WholeStepCheck f = fixture()) {
      String b = loraB(f);
      WholeStepCheck.State zero = f.zeroMoments(f.values);
      // a finite first moment whose bias-corrected value (m' / (1 - β1)) overflows float32: p' = -∞
      Map<String, double[]> m = new HashMap<>(zero.m());
      double[] big = new double[m.get(b).length];
      Arrays.fill(big, 3e38);
      m.put(b, big);
      Map<String, double[]> out = f.run(f.batch, new WholeStepCheck.State(zero.values(), m, zero.v()), 1,
          WholeStepCheck.LEARNING_RATE, Set.of("loss", "finite", b + ".next", b + ".adam_m.next"));
      assertTrue(Double.isFinite(out.get("loss")[0]));
      assertTrue(Arrays.stream(out.get(b + ".adam_m.next")).allMatch(Double::isFinite));
      assertTrue(Arrays.stream(out.get(b + ".next")).anyMatch(x -> !Double.isFinite(x)));
      assertEquals(0.0, out.get("finite")[0]);

      // an infinite second moment in: v' is infinite
      Map<String, double[]> v = new HashMap<>(zero.v());
      double[] inf = new double[v.get(b).length];
      inf[1] = Double.POSITIVE_INFINITY;
      v.put(b, inf);
      assertEquals(0.0, f.run(f.batch, new WholeStepCheck.State(zero.values(), zero.m(), v), 1,
          WholeStepCheck.LEARNING_RATE, Set.of("finite")).get("finite")[0]);
    }
  }

  @Test
  void theManifestMarksTheAttentionMask() throws Exception {
    try (WholeStepCheck f = fixture()) {
      Map<String, Boolean> mask = new HashMap<>();
      for (HostInput in : f.graft.manifest().getInputsList()) {
        mask.put(in.getName(), in.getMask());
      }
      assertEquals(Map.of("input_ids", false, "attention_mask", true, "token_type_ids", false), mask);
      assertFalse(f.graft.manifest().getParametersList().isEmpty());
      for (Parameter p : f.graft.manifest().getParametersList()) {
        assertTrue(f.trainOutputs().contains(p.getName() + ".next"));
      }
    }
  }
}
