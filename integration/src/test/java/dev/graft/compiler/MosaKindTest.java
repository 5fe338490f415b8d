package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.kinds.bottleneck.MosaKind;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * MoSA on the float64 tiny BERT: the fixed partition into modules, the step's drawn modules, the
 * whole step against central differences at a fixed seed (so a fixed mask), the training graph's
 * mask against a plain bottleneck with masked values, updates confined to the active modules, and
 * the inference graph as the merged adapter (the union of the modules).
 */
class MosaKindTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);
  /** Every tensor split, active entries scaled by modules / active: the tests below that use it. */
  private static final Map<String, Object> OPTIONS = Map.of("reduction", 2, "modules", 4, "active", 2, "partitionSeed", 3,
      "split", "all", "rescale", true);
  /** The reference's recipe (split = up, no rescaling), the kind's defaults. */
  private static final Map<String, Object> REFERENCE = Map.of("reduction", 2, "modules", 4, "active", 2, "partitionSeed", 3);
  /** The {@code draw} choices: per site (the default) and once per step. */
  private static final java.util.List<String> DRAWS = java.util.List.of("site", "step");

  // ---------------------------------------------------------------- the partition and the draw

  @Test
  void modulesPartitionEveryTensorIntoBalancedDisjointSets() {
    for (int entries : new int[] {1, 7, 64, 1000}) {
      for (int modules : new int[] {2, 3, 4, 64}) {
        int[] module = MosaKind.partition("p.mosa.down.weight", entries, modules, 3);
        int[] counts = new int[modules];
        for (int m : module) {
          assertTrue(m >= 0 && m < modules, "module " + m + " of " + modules);
          counts[m]++;
        }
        for (int c : counts) {
          assertTrue(c == entries / modules || c == (entries + modules - 1) / modules,
              entries + " entries in " + modules + " modules: " + java.util.Arrays.toString(counts));
        }
        assertArrayEquals(module, MosaKind.partition("p.mosa.down.weight", entries, modules, 3), "deterministic");
      }
    }
    assertNotEquals(java.util.Arrays.toString(MosaKind.partition("a", 64, 4, 3)),
        java.util.Arrays.toString(MosaKind.partition("a", 64, 4, 4)), "the seed changes the partition");
  }

  @Test
  void eachStepActivatesExactlyActiveModulesUniformly() {
    for (int[] nk : new int[][] {{2, 1}, {4, 1}, {4, 2}, {8, 3}}) {
      for (long factor : new long[] {1, MosaKind.siteFactor("site", "encoder.layer.1.output.dense")}) {
        int[] counts = new int[nk[0]];
        int steps = 6000;
        for (long seed = 5_000_000L; seed < 5_000_000L + steps; seed++) {
          boolean[] on = MosaKind.activeModules(seed, nk[0], nk[1], factor);
          int active = 0;
          for (int i = 0; i < on.length; i++) {
            if (on[i]) {
              active++;
              counts[i]++;
            }
          }
          assertEquals(nk[1], active, "seed " + seed);
        }
        double expected = (double) steps * nk[1] / nk[0];
        for (int c : counts) {
          assertEquals(expected, c, 0.1 * expected, nk[0] + " modules, " + nk[1] + " active, factor " + factor + ": "
              + java.util.Arrays.toString(counts));
        }
      }
    }
    long factor = MosaKind.siteFactor("site", "encoder.layer.0.output.dense");
    assertArrayEquals(MosaKind.activeModules(-9, 4, 2, factor), MosaKind.activeModules(-9 + 2_147_483_646L, 4, 2, factor),
        "floor mod");
  }

  /**
   * With {@code draw = site} two sites draw their modules independently: over 6000 seeds they
   * agree about as often as two independent uniform draws of 2 of 4 modules (1/6); with {@code
   * draw = step} the factor is 1 at every site, so they always agree.
   */
  @Test
  void siteDrawsAreIndependentAndStepDrawsAreShared() {
    String a = "encoder.layer.0.output.dense";
    String b = "encoder.layer.1.output.dense";
    assertEquals(1, MosaKind.siteFactor("step", a));
    assertNotEquals(MosaKind.siteFactor("site", a), MosaKind.siteFactor("site", b));
    int steps = 6000;
    int agreeSite = 0;
    for (long seed = 0; seed < steps; seed++) {
      agreeSite += java.util.Arrays.equals(MosaKind.activeModules(seed, 4, 2, MosaKind.siteFactor("site", a)),
          MosaKind.activeModules(seed, 4, 2, MosaKind.siteFactor("site", b))) ? 1 : 0;
      assertArrayEquals(MosaKind.activeModules(seed, 4, 2, MosaKind.siteFactor("step", a)),
          MosaKind.activeModules(seed, 4, 2, MosaKind.siteFactor("step", b)), "seed " + seed);
    }
    assertEquals(steps / 6.0, agreeSite, 0.15 * steps / 6.0, "draws of two sites that agree");
    System.out.printf("mosa draw = site: two sites agree at %d of %d seeds (independent: %d)%n", agreeSite, steps, steps / 6);
  }

  /**
   * The modules the training graph actually updates at each site (read off one step from random
   * moments: a module is active where its entries moved) are the Java draw of that site; with
   * {@code draw = site} the sites' modules differ at some seeds, with {@code draw = step} they are
   * the same at every seed.
   */
  @Test
  void theGraphDrawsPerSiteOrOncePerStep() throws OrtException {
    for (String draw : DRAWS) {
      Map<String, Object> options = new HashMap<>(REFERENCE);
      options.put("draw", draw);
      try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", options))) {
        java.util.List<Parameter> ups = adapterParams(c).stream().filter(p -> p.getName().endsWith(".mosa.up.weight")).toList();
        assertTrue(ups.size() >= 2, "sites " + ups.size());
        int seedsWhereSitesDiffer = 0;
        for (long seed = 0; seed < 8; seed++) {
          c.seed = seed;
          WholeStepCheck.State before = c.randomMoments(seed + 1);
          Map<String, double[]> out = c.run(c.batch, before, 3, 0.01, c.updateOutputs());
          Set<String> drawn = new LinkedHashSet<>();
          for (Parameter p : ups) {
            int[] module = MosaKind.partition(p.getName(), WholeStepCheck.size(p), 4, 3);
            boolean[] moved = new boolean[4];
            for (int i = 0; i < module.length; i++) {
              moved[module[i]] |= !WholeStepCheck.unchanged(out, before, p.getName(), i);
            }
            assertArrayEquals(active(seed, p, draw), moved, draw + " draw, seed " + seed + ", " + p.getName());
            drawn.add(java.util.Arrays.toString(moved));
          }
          if (draw.equals("step")) {
            assertEquals(1, drawn.size(), "one draw per step at seed " + seed + ": " + drawn);
          }
          seedsWhereSitesDiffer += drawn.size() > 1 ? 1 : 0;
        }
        if (draw.equals("site")) {
          assertTrue(seedsWhereSitesDiffer >= 3, "sites draw independently: they differ at " + seedsWhereSitesDiffer + " of 8 seeds");
        }
        System.out.printf("mosa draw = %s: the sites' modules differ at %d of 8 seeds%n", draw, seedsWhereSitesDiffer);
      }
    }
  }

  // ---------------------------------------------------------------- the training step

  @Test
  void theStepDrawsStepMatchesCentralDifferences() throws OrtException {
    Map<String, Object> options = new HashMap<>(REFERENCE);
    options.put("draw", "step");
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", options))) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("mosa %s seed %d: max FD error %.3g%n", options, c.seed, worst);
      assertTrue(worst < 1e-7, "max error " + worst);
    }
  }

  @Test
  void wholeStepMatchesCentralDifferencesAtAFixedMask() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", OPTIONS))) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("mosa %s seed %d: max FD error %.3g%n", OPTIONS, c.seed, worst);
      assertTrue(worst < 1e-7, "max error " + worst);
      // Inactive entries get no gradient, active ones do (somewhere).
      int inactiveZero = 0;
      int activeNonZero = 0;
      for (Parameter p : adapterParams(c)) {
        boolean[] on = active(c.seed, p, "site");
        String g = p.getName() + GraftCompiler.GRADIENT_SUFFIX;
        double[] grad = c.run(Map.of(), Set.of(g)).get(g);
        int[] module = MosaKind.partition(p.getName(), grad.length, 4, 3);
        for (int i = 0; i < grad.length; i++) {
          if (!on[module[i]]) {
            assertTrue(grad[i] == 0, p.getName() + "[" + i + "] is in an inactive module: " + grad[i]);
            inactiveZero++;
          } else if (grad[i] != 0) {
            activeNonZero++;
          }
        }
      }
      assertTrue(inactiveZero > 0 && activeNonZero > 0, inactiveZero + " inactive, " + activeNonZero + " active non-zero");
    }
  }

  /**
   * For each seed the training graph's loss is a plain bottleneck's with every entry outside the
   * seed's active modules zeroed and the others scaled by modules / active; seeds drawing different modules give different losses.
   */
  @Test
  void theTrainingGraphUsesTheModulesTheSeedDraws() throws OrtException {
    try (WholeStepCheck mosa = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", OPTIONS));
        WholeStepCheck plain = WholeStepCheck.classification(HOST, Adapters.of("bottleneck", "", Map.of("reduction", 2)))) {
      Set<Double> losses = new LinkedHashSet<>();
      for (long seed = -3; seed < 12; seed++) {
        mosa.seed = seed;
        Map<String, double[]> masked = new HashMap<>();
        for (Parameter p : mosa.params) {
          double[] v = mosa.values.get(p.getName()).clone();
          if (p.getName().contains(".mosa.")) {
            boolean[] on = active(seed, p, "site");
            int[] module = MosaKind.partition(p.getName(), v.length, 4, 3);
            for (int i = 0; i < v.length; i++) {
              v[i] = on[module[i]] ? v[i] * 2 : 0; // modules / active = 4 / 2
            }
          }
          masked.put(p.getName().replace(".mosa.", ".adapter."), v);
        }
        double loss = mosa.loss(Map.of());
        assertEquals(plain.loss(masked), loss, 1e-12 * Math.abs(loss), "seed " + seed);
        losses.add(loss);
      }
      assertTrue(losses.size() > 3, "different draws give different losses: " + losses);
    }
  }

  /** One step from random moments changes only the active modules' entries and moments. */
  @Test
  void aStepUpdatesOnlyTheActiveModules() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", OPTIONS))) {
      c.seed = 77;
      WholeStepCheck.State before = c.randomMoments(1);
      Map<String, double[]> out = c.run(c.batch, before, 3, 0.01, c.updateOutputs());
      int kept = 0;
      int moved = 0;
      for (Parameter p : adapterParams(c)) {
        String n = p.getName();
        boolean[] on = active(c.seed, p, "site");
        int[] module = MosaKind.partition(n, WholeStepCheck.size(p), 4, 3);
        for (int i = 0; i < module.length; i++) {
          boolean same = WholeStepCheck.unchanged(out, before, n, i);
          assertEquals(!on[module[i]], same, n + "[" + i + "] in module " + module[i]);
          kept += same ? 1 : 0;
          moved += same ? 0 : 1;
        }
      }
      System.out.printf("mosa step at seed 77: %d entries moved, %d kept%n", moved, kept);
    }
  }

  /**
   * The reference's recipe: only the up weight is split and the active entries are not scaled, so
   * the loss at each seed is a plain bottleneck's with the up weight's inactive entries zeroed.
   */
  @Test
  void byDefaultOnlyTheUpWeightIsSplitAndNothingIsScaled() throws OrtException {
    try (WholeStepCheck mosa = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", REFERENCE));
        WholeStepCheck plain = WholeStepCheck.classification(HOST, Adapters.of("bottleneck", "", Map.of("reduction", 2)))) {
      Set<Double> losses = new LinkedHashSet<>();
      for (long seed = -3; seed < 12; seed++) {
        mosa.seed = seed;
        Map<String, double[]> masked = new HashMap<>();
        for (Parameter p : mosa.params) {
          double[] v = mosa.values.get(p.getName()).clone();
          if (p.getName().endsWith(".mosa.up.weight")) {
            boolean[] on = active(seed, p, "site");
            int[] module = MosaKind.partition(p.getName(), v.length, 4, 3);
            for (int i = 0; i < v.length; i++) {
              v[i] = on[module[i]] ? v[i] : 0;
            }
          }
          masked.put(p.getName().replace(".mosa.", ".adapter."), v);
        }
        double loss = mosa.loss(Map.of());
        assertEquals(plain.loss(masked), loss, 1e-12 * Math.abs(loss), "seed " + seed);
        losses.add(loss);
      }
      assertTrue(losses.size() > 3, "different draws give different losses: " + losses);
      for (Parameter p : adapterParams(mosa)) {
        assertEquals(p.getName().endsWith(".mosa.up.weight"), !p.getUpdateMask().isEmpty(), p.getName());
      }
    }
  }

  @Test
  void theReferenceRecipesStepMatchesCentralDifferencesAndMovesTheWholeDownProjection() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", REFERENCE))) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("mosa %s seed %d: max FD error %.3g%n", REFERENCE, c.seed, worst);
      assertTrue(worst < 1e-7, "max error " + worst);
      c.seed = 77;
      WholeStepCheck.State before = c.randomMoments(1);
      Map<String, double[]> out = c.run(c.batch, before, 3, 0.01, c.updateOutputs());
      int keptUp = 0;
      for (Parameter p : adapterParams(c)) {
        String n = p.getName();
        boolean[] on = active(c.seed, p, "site");
        boolean split = n.endsWith(".mosa.up.weight");
        int[] module = MosaKind.partition(n, WholeStepCheck.size(p), 4, 3);
        for (int i = 0; i < module.length; i++) {
          boolean same = WholeStepCheck.unchanged(out, before, n, i);
          assertEquals(split && !on[module[i]], same, n + "[" + i + "] in module " + module[i]);
          keptUp += same ? 1 : 0;
        }
      }
      System.out.printf("mosa reference recipe, seed 77: %d up-weight entries kept, the rest moved%n", keptUp);
    }
  }

  // ---------------------------------------------------------------- the merged adapter

  /**
   * The inference graph is the merged adapter: its logits are a plain bottleneck's with the same
   * tensors, which are the sum (the union) of their modules' disjoint parts.
   */
  @Test
  void inferenceUsesTheUnionOfTheModules() throws OrtException {
    try (WholeStepCheck mosa = WholeStepCheck.classification(HOST, Adapters.of("mosa", "", OPTIONS));
        WholeStepCheck plain = WholeStepCheck.classification(HOST, Adapters.of("bottleneck", "", Map.of("reduction", 2)))) {
      for (Parameter p : mosa.params) {
        double[] whole = mosa.values.get(p.getName());
        if (p.getName().contains(".mosa.")) {
          int[] module = MosaKind.partition(p.getName(), whole.length, 4, 3);
          double[] union = new double[whole.length];
          for (int k = 0; k < 4; k++) {
            for (int i = 0; i < whole.length; i++) {
              union[i] += module[i] == k ? whole[i] : 0;
            }
          }
          assertArrayEquals(whole, union, 0, p.getName());
        }
        plain.values.put(p.getName().replace(".mosa.", ".adapter."), whole.clone());
      }
      double[] merged = mosa.inference();
      assertArrayEquals(plain.inference(), merged, 1e-12);
      assertTrue(Math.abs(merged[0] - merged[1]) > 1e-6, "non-trivial logits " + merged[0] + ", " + merged[1]);
    }
  }

  // ---------------------------------------------------------------- declaration

  @Test
  void savesBottleneckKeysWithAnUpdateMaskPerParameter() {
    Manifest m = Graft.host(TinyBertHost.host(3)).mosa("", o -> o.set("reduction", 2)).classification(2).compile().manifest();
    assertEquals("mosa", m.getAdapters(0).getKind());
    Parameter down = m.getParametersList().stream().filter(p -> p.getName().endsWith("mosa.down.weight")).findFirst().orElseThrow();
    Parameter up = m.getParametersList().stream().filter(p -> p.getName().endsWith("mosa.up.weight")).findFirst().orElseThrow();
    assertEquals("", down.getUpdateMask(), "split = up: the down projection trains whole");
    assertEquals(up.getName() + MosaKind.MASK_SUFFIX, up.getUpdateMask());
    assertEquals("base_model.model.encoder.layer.0.output.dense.adapters.default.adapter_down.0.weight", down.getSaveKey());
  }

  @Test
  void everyModuleActiveIsAnError() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .mosa("", o -> o.set("modules", 3).set("active", 3)).classification(2).compile());
    assertTrue(e.getMessage().contains("GRAFT061") && e.getMessage().contains("active (3) must be less than modules (3)"),
        e.getMessage());
  }

  /** The modules {@code p}'s site trains at {@code seed} under {@code draw} (4 modules, 2 active), as the graph draws them. */
  private static boolean[] active(long seed, Parameter p, String draw) {
    return MosaKind.activeModules(seed, 4, 2, MosaKind.siteFactor(draw, p.getSite()));
  }

  private static java.util.List<Parameter> adapterParams(WholeStepCheck c) {
    return c.params.stream().filter(p -> p.getName().contains(".mosa.")).toList();
  }
}
