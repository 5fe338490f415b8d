package dev.graft.runtime.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.GraftException;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The registry, the builder and {@code linear}, on small random factored updates. */
class LinearMergeTest {
  static SiteDelta lora(String site, int in, int out, int rank, long seed) {
    Random r = new Random(seed);
    double[] a = new double[in * rank];
    double[] b = new double[rank * out];
    for (int i = 0; i < a.length; i++) {
      a[i] = r.nextGaussian();
    }
    for (int i = 0; i < b.length; i++) {
      b[i] = r.nextGaussian();
    }
    return SiteDelta.factored(site, in, out, rank, a, b, null);
  }

  static AdapterDelta input(String name, long seed, int rank) {
    return AdapterDelta.of(name, "", List.of(lora("l.0.q", 6, 5, rank, seed), lora("l.0.v", 6, 4, rank, seed + 1)),
        List.of(new HeadTensor("classifier.weight", new long[] {2, 3}, new double[] {seed, 1, 2, 3, 4, 5})));
  }

  @Test
  void linearOfOneAdapterWithWeightOneIsThatAdapter() {
    AdapterDelta x = input("x", 1, 3);
    MergeResult r = Merge.method("linear").add(x, 1.0).run();
    assertEquals(x.sites().keySet(), r.sites().keySet());
    for (SiteDelta d : x.sites().values()) {
      assertArrayEquals(d.weight(), r.sites().get(d.site()).weight(), 0.0);
      assertArrayEquals(d.bias(), r.sites().get(d.site()).bias(), 0.0);
    }
    assertArrayEquals(x.head().get("classifier.weight").values(), r.head().get("classifier.weight").values(), 0.0);
    assertTrue(r.exact());
    assertEquals("{\"method\":\"linear\",\"exact\":true,\"options\":{},\"inputs\":[{\"name\":\"x\",\"weight\":1.0}]}",
        r.provenance().toString());
  }

  @Test
  void linearIsTheWeightedMean() {
    AdapterDelta x = input("x", 1, 2);
    AdapterDelta y = input("y", 7, 3);
    MergeResult r = Merge.method("linear").add(x, 1.0).add(y, 3.0).run();
    for (String site : x.sites().keySet()) {
      double[] dx = x.sites().get(site).weight();
      double[] dy = y.sites().get(site).weight();
      double[] got = r.sites().get(site).weight();
      for (int i = 0; i < got.length; i++) {
        assertEquals((dx[i] + 3 * dy[i]) / 4, got[i], 1e-12);
      }
    }
    assertEquals((1 + 3 * 7) / 4.0, r.head().get("classifier.weight").values()[0], 1e-12);
  }

  @Test
  void aSiteOneInputLeavesAloneIsAZeroUpdateThere() {
    AdapterDelta x = input("x", 1, 2);
    AdapterDelta onlyQ = AdapterDelta.of("q", "", List.of(lora("l.0.q", 6, 5, 2, 9)), List.copyOf(x.head().values()));
    MergeResult r = Merge.method("linear").add(x, 1.0).add(onlyQ, 1.0).run();
    double[] v = x.sites().get("l.0.v").weight();
    double[] got = r.sites().get("l.0.v").weight();
    for (int i = 0; i < v.length; i++) {
      assertEquals(v[i] / 2, got[i], 1e-12);
    }
  }

  @Test
  void anUnknownMethodIsR130ListingTheRegistry() {
    GraftException e = assertThrows(GraftException.class, () -> Merge.method("average"));
    assertEquals("GRAFT-R130", e.getCode());
    assertTrue(e.getMessage().contains("[linear, task_arithmetic, cat, ties, dare_linear, dare_ties, magnitude_prune,"
        + " ab_linear]"), e.getMessage());
  }

  @Test
  void inputsThatDisagreeAreR131() {
    AdapterDelta x = input("x", 1, 2);
    AdapterDelta wide = AdapterDelta.of("w", "", List.of(lora("l.0.q", 7, 5, 2, 3)), List.copyOf(x.head().values()));
    GraftException e = assertThrows(GraftException.class, () -> Merge.method("linear").add(x, 1).add(wide, 1).run());
    assertEquals("GRAFT-R131", e.getCode());
    assertTrue(e.getMessage().contains("site l.0.q: expected the widths [6, 5] of 'x', given [7, 5] in 'w'"),
        e.getMessage());
    assertEquals("GRAFT-R131", assertThrows(GraftException.class, () -> Merge.method("linear").run()).getCode());
    assertEquals("GRAFT-R131", assertThrows(GraftException.class,
        () -> Merge.method("linear").add(x, 1).add(input("y", 2, 2), -1).run()).getCode());
    AdapterDelta headless = AdapterDelta.of("h", "", List.copyOf(x.sites().values()), List.of());
    assertEquals("GRAFT-R131", assertThrows(GraftException.class,
        () -> Merge.method("linear").add(x, 1).add(headless, 1).run()).getCode());
    assertEquals("GRAFT-R131", assertThrows(GraftException.class,
        () -> SiteDelta.dense("s", 2, 2, new double[] {1, Double.NaN, 0, 0}, null)).getCode());
    assertEquals("GRAFT-R131", assertThrows(GraftException.class,
        () -> Merge.method("linear").add(AdapterDelta.of("a", "aa", List.of(), List.of()), 1)
            .add(AdapterDelta.of("b", "bb", List.of(), List.of()), 1).run()).getCode());
  }

  @Test
  void optionsOutOfRangeAreR132() {
    for (Runnable r : List.<Runnable>of(() -> MergeOptions.defaults().withDensity(0),
        () -> MergeOptions.defaults().withDensity(1.5), () -> MergeOptions.defaults().withDropRate(1),
        () -> MergeOptions.defaults().withDropRate(-0.1), () -> MergeOptions.defaults().withLambda(Double.NaN))) {
      assertEquals("GRAFT-R132", assertThrows(GraftException.class, r::run).getCode());
    }
    assertEquals("GRAFT-R132", assertThrows(GraftException.class,
        () -> Merge.method("linear").add(input("x", 1, 2), 1).run().toRank(0)).getCode());
  }

  @Test
  void theRegistryListsEveryMethodOnceAndLabelsTheApproximateOne() {
    assertEquals(MergeMethods.ids().size(), MergeMethods.all().stream().map(MergeMethod::id).distinct().count());
    for (MergeMethod m : MergeMethods.all()) {
      assertEquals(m, MergeMethods.get(m.id()));
      assertEquals(!m.id().equals("ab_linear"), m.exact(), m.id());
    }
    assertFalse(MergeMethods.get("ab_linear").exact());
    assertTrue(MergeMethods.get("ab_linear").description().startsWith("APPROXIMATE"));
  }
}
