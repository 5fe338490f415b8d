package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.ComposableKind;
import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Every graph variant must declare the same parameters: a kind that adds one only to the training
 * step, or shapes one differently there, fails compilation with an internal error naming it.
 */
class GraphVariantAgreementTest {
  private static final int WIDTH = 4;

  /** x [batch, sequence, 4] · W [4, 4]: one linear site, a [batch, sequence, hidden] output. */
  private static HostModel host() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, List.of(Dim.symbol("batch"), Dim.symbol("sequence"), Dim.of(WIDTH))));
    double[] w = new double[WIDTH * WIDTH];
    for (int i = 0; i < w.length; i++) {
      w[i] = 0.1 * (i % 5) - 0.2;
    }
    g.addInitializer(Tensors.floats("dense.weight", TensorType.FLOAT, List.of((long) WIDTH, (long) WIDTH), w), false);
    g.outputs().add(g.opTo("hidden", "/layer/dense/MatMul", "MatMul", List.of("x", "dense.weight")));
    return new HostModel("tiny.onnx", OnnxExport.write(g, "tiny"), "0");
  }

  private static CompileResult compile(String kind) {
    GraftSpec spec = new GraftSpec("Tiny", "tiny.onnx", List.of(new AdapterSpec(kind, "", List.of(), Map.of(), null)),
        new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), AdamWSpec.DEFAULT, null, List.of(), List.of());
    return GraftCompiler.compile(spec, host());
  }

  @Test
  void aKindThatAddsTheSameParametersToEveryVariantCompiles() {
    CompileResult r = compile("test_same_in_every_variant");
    assertTrue(r.ok(), () -> r.diagnostics().toString());
    List<String> names = r.orThrow().manifest().getParametersList().stream().map(Parameter::getName).toList();
    assertEquals(List.of("layer.dense.bias_delta", "classifier.weight", "classifier.bias"), names);
  }

  @Test
  void aParameterOnlyInTheTrainingStepIsAnInternalError() {
    CompileResult r = compile("test_extra_in_training");
    assertFalse(r.ok());
    assertEquals(1, r.diagnostics().size(), () -> r.diagnostics().toString());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.INTERNAL_ERROR, d.code());
    assertTrue(d.message().contains("internal error compiling Tiny"), d.message());
    assertTrue(d.message().contains("the INFERENCE and TRAIN graphs declare different parameters: parameter #1 is "
        + "'classifier.weight' in the INFERENCE graph but 'layer.dense.training_only' in the TRAIN graph"), d.message());
  }

  @Test
  void aParameterShapedDifferentlyInTheTrainingStepIsAnInternalError() {
    CompileResult r = compile("test_wider_in_training");
    assertFalse(r.ok());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.INTERNAL_ERROR, d.code());
    assertTrue(d.message().contains("parameter 'layer.dense.bias_delta' is float32[4] in the INFERENCE graph but "
        + "float32[5] in the TRAIN graph"), d.message());
  }

  @Test
  void aParameterInitializedDifferentlyInTheTrainingStepIsAnInternalError() {
    CompileResult r = compile("test_init_by_variant");
    assertFalse(r.ok());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.INTERNAL_ERROR, d.code());
    assertTrue(d.message().contains("parameter 'layer.dense.bias_delta' is declared as {"), d.message());
    assertTrue(d.message().contains("init: NORMAL"), d.message());
  }

  /** Adds {@code bias_delta [width]} to the site's value (more in subclasses' training steps). */
  public static class SameInEveryVariant implements ComposableKind {
    @Override
    public String id() {
      return "test_same_in_every_variant";
    }

    @Override
    public String displayName() {
      return "test kind";
    }

    @Override
    public String annotation() {
      return "test." + id();
    }

    @Override
    public List<AdapterOption> options() {
      return List.of();
    }

    long width(long width, Placement placement) {
      return width;
    }

    @Override
    public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
      String delta = placement.parameter(site, "bias_delta", width(width, placement)).add();
      return placement.graph().op("/test/" + site.modulePath() + "/Add", "Add", List.of(value, delta));
    }
  }

  /** Also adds {@code training_only [width]} in the training step. */
  public static final class ExtraInTraining extends SameInEveryVariant {
    @Override
    public String id() {
      return "test_extra_in_training";
    }

    @Override
    public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
      String out = super.apply(spec, site, value, width, placement);
      if (!placement.variant().trains()) {
        return out;
      }
      String extra = placement.parameter(site, "training_only", width).add();
      return placement.graph().op("/test/" + site.modulePath() + "/Add", "Add", List.of(out, extra));
    }
  }

  /** Initializes {@code bias_delta} from a normal distribution in the training step only. */
  public static final class InitByVariant extends SameInEveryVariant {
    @Override
    public String id() {
      return "test_init_by_variant";
    }

    @Override
    public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
      Placement.ParameterBuilder p = placement.parameter(site, "bias_delta", width);
      if (placement.variant().trains()) {
        p.init(Init.NORMAL, 0.02);
      }
      return placement.graph().op("/test/" + site.modulePath() + "/Add", "Add", List.of(value, p.add()));
    }
  }

  /** Declares {@code bias_delta} one wider in the training step (broadcast against a [.., 1] slice). */
  public static final class WiderInTraining extends SameInEveryVariant {
    @Override
    public String id() {
      return "test_wider_in_training";
    }

    @Override
    long width(long width, Placement placement) {
      return placement.variant().trains() ? width + 1 : width;
    }

    @Override
    public String apply(AdapterSpec spec, Site site, String value, long width, Placement placement) {
      Graph g = placement.graph();
      String delta = placement.parameter(site, "bias_delta", width(width, placement)).add();
      String first = g.op("/test/Slice", "Slice", List.of(delta, g.longs("/test/start", List.of(0L)),
          g.longs("/test/end", List.of(width)), g.longs("/test/axes", List.of(0L))));
      return g.op("/test/" + site.modulePath() + "/Add", "Add", List.of(value, first));
    }
  }
}
