package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** SEMA's mixture of adapters: the whole training step with frozen pool members, names, option errors. */
class SemaKindTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);

  /** Layer 0: pool of 2, first frozen; layer 1: pool of 3, first two frozen (the router's columns too). */
  private static final Map<String, Object> POOLS = Map.of("reduction", 2, "poolPerLayer", List.of(2, 3),
      "frozenPerLayer", List.of(1, 2));

  /**
   * A later task's training as the loop compiles it: every earlier adapter frozen, one new adapter at
   * layer 1, and a fresh head block of the task's own three classes (dev.graft.dsl.continual.TaskHead).
   */
  @Test
  void laterTaskStepWithAThreeClassHeadBlockMatchesCentralDifferences() throws OrtException {
    Map<String, Object> pools = Map.of("reduction", 2, "poolPerLayer", List.of(1, 2), "frozenPerLayer", List.of(1, 1));
    try (WholeStepCheck c = WholeStepCheck.of(HOST, new ClassificationSpec(3, ClassificationSpec.Pooling.MEAN, "", null),
        Adapters.of("sema", "", pools))) {
      c.randomize(5, p -> 0, p -> 0.5);
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("sema later task, 3-class head: max FD error %.3g%n", worst);
      assertTrue(worst < 1e-7, "max error " + worst);
      assertEquals(3L, c.params.stream().filter(p -> p.getName().equals("classifier.bias"))
          .findFirst().orElseThrow().getShape(0));
    }
  }

  @Test
  void semaStepWithRouterAndFrozenAdaptersMatchesCentralDifferences() throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.classification(HOST, Adapters.of("sema", "", POOLS))) {
      c.randomize(3, p -> 0, p -> 0.5);
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      System.out.printf("sema %s: max FD error %.3g%n", POOLS, worst);
      assertTrue(worst < 1e-7, "max error " + worst);
      // the frozen members are fed and not updated by the step; the new ones are
      var trained = c.train(c.batch, c.values, 3, 0.05).state().values();
      for (Parameter p : c.params) {
        if (p.getName().contains(".sema.")) {
          boolean same = java.util.Arrays.equals(c.values.get(p.getName()), trained.get(p.getName()));
          assertEquals(p.getFrozen(), same, p.getName() + " frozen=" + p.getFrozen());
        }
      }
    }
  }

  @Test
  void poolsNameEachAdapterAndFreezeTheLeadingOnes() {
    Manifest m = Graft.host(TinyBertHost.host(3))
        .sema("", o -> o.reduction(4).poolPerLayer(2, 1).frozenPerLayer(1, 0)).classification(2).compile().manifest();
    List<String> frozen = m.getParametersList().stream().filter(Parameter::getFrozen).map(Parameter::getName).toList();
    List<String> sema = m.getParametersList().stream().map(Parameter::getName).filter(n -> n.contains(".sema.")).toList();
    assertEquals(List.of("encoder.layer.0.output.sema.0.down.weight", "encoder.layer.0.output.sema.0.down.bias",
        "encoder.layer.0.output.sema.0.up.weight", "encoder.layer.0.output.sema.0.up.bias",
        "encoder.layer.0.output.sema.0.router"), frozen);
    // layer 0: two adapters with router columns; layer 1: one adapter, no router
    assertEquals(10 + 4, sema.size(), sema.toString());
    assertFalse(sema.contains("encoder.layer.1.output.sema.0.router"));
  }

  @Test
  void perLayerOptionsOfTheWrongLengthAreRejected() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .sema("", o -> o.poolPerLayer(2, 2, 2)).classification(2).compile());
    assertTrue(e.getMessage().contains("[GRAFT351]"), e.getMessage());
    assertTrue(e.getMessage().contains("has 3 entries, but the declaration selects 2 layers [0, 1]"), e.getMessage());
  }

  @Test
  void moreFrozenThanThePoolIsRejected() {
    GraftCompileException e = assertThrows(GraftCompileException.class, () -> Graft.host(TinyBertHost.host(3))
        .sema("", o -> o.poolPerLayer(1, 2).frozenPerLayer(1, 3)).classification(2).compile());
    assertTrue(e.getMessage().contains("[GRAFT352]"), e.getMessage());
    assertTrue(e.getMessage().contains("3 frozen adapters at layer 1, but its pool holds 2"), e.getMessage());
  }

  @Test
  void perLayerOptionsOnASiteWithoutALayerAreRejected() {
    var site = new dev.graft.compiler.kinds.SpanSite("/pooler/dense/MatMul", "pooler", java.util.OptionalInt.empty(),
        "x", "y", 8, 8);
    var errors = new dev.graft.compiler.kinds.mixture.SemaKind().diagnose(
        Adapters.of("sema", "", Map.of("poolPerLayer", List.of(2))), List.of(site), HOST);
    assertEquals(1, errors.size(), errors.toString());
    assertEquals(dev.graft.compiler.diag.ErrorCode.SEMA_SITE_WITHOUT_LAYER, errors.get(0).code());
    assertTrue(errors.get(0).message().contains("/pooler/dense/MatMul has none"), errors.get(0).message());
  }
}
