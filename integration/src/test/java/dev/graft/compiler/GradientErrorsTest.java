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
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.testing.Adapters;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * GRAFT030 only for an op without a gradient rule; an op whose rule exists but cannot apply to the
 * node is GRAFT191, naming the op, the node and the reason, and an index computed from the data
 * GRAFT180, both without the list of ops with rules.
 */
class GradientErrorsTest {
  /** x [batch, sequence, 4] → /dense/MatMul → h; last_hidden_state = Slice(h, starts = offset (an input), axis 1). */
  private static HostModel sliceAtARunTimeOffset() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, List.of(Dim.symbol("batch"), Dim.symbol("sequence"), Dim.of(4))));
    g.addInput("offset", TensorType.of(TensorType.INT64, List.of(Dim.of(1))));
    double[] w = new double[16];
    for (int i = 0; i < w.length; i++) {
      w[i] = 0.1 * (i % 5) - 0.2;
    }
    g.addInitializer(Tensors.floats("W", TensorType.FLOAT, List.of(4L, 4L), w), false);
    String h = g.op("/encoder/layer.0/dense/MatMul", "MatMul", List.of("x", "W"));
    g.outputs().add(g.opTo("last_hidden_state", "/encoder/Slice", "Slice",
        List.of(h, "offset", g.longs("/encoder/ends", List.of(Long.MAX_VALUE)), g.longs("/encoder/axes", List.of(1L)))));
    dev.graft.compiler.ir.ShapeInference.run(g);
    return HostModel.of("tiny-slice", OnnxExport.write(g, "tiny-slice"));
  }

  /** x [batch, sequence, 4] → /dense/MatMul → h; last_hidden_state = Pad(h, reflect) along the sequence. */
  private static HostModel reflectPad() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, List.of(Dim.symbol("batch"), Dim.symbol("sequence"), Dim.of(4))));
    double[] w = new double[16];
    for (int i = 0; i < w.length; i++) {
      w[i] = 0.1 * (i % 5) - 0.2;
    }
    g.addInitializer(Tensors.floats("W", TensorType.FLOAT, List.of(4L, 4L), w), false);
    String h = g.op("/encoder/layer.0/dense/MatMul", "MatMul", List.of("x", "W"));
    g.outputs().add(g.opTo("last_hidden_state", "/encoder/Pad", "Pad",
        List.of(h, g.longs("/encoder/pads", List.of(0L, 1L, 0L, 0L, 1L, 0L))), dev.graft.spec.onnx.Onnx.AttributeProto.newBuilder().setName("mode")
            .setType(dev.graft.spec.onnx.Onnx.AttributeProto.AttributeType.STRING)
            .setS(com.google.protobuf.ByteString.copyFromUtf8("reflect")).build()));
    dev.graft.compiler.ir.ShapeInference.run(g);
    return HostModel.of("tiny-pad", OnnxExport.write(g, "tiny-pad"));
  }

  private static GraftSpec lora(String name, String host) {
    return new GraftSpec(name, host, List.of(Adapters.lora(".*/dense/MatMul", 2, 4)),
        new ClassificationSpec(2, ClassificationSpec.Pooling.FIRST_TOKEN, "", null), AdamWSpec.DEFAULT, null);
  }

  @Test
  void aRuleThatCannotApplyIsNotAMissingRule() {
    CompileResult r = GraftCompiler.compile(lora("Padded", "tiny-pad"), reflectPad());
    assertFalse(r.ok());
    assertEquals(1, r.diagnostics().size(), r.diagnostics().toString());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.GRADIENT_RULE_CANNOT_APPLY, d.code(), d.message());
    assertEquals("[GRAFT191] the gradient rule of op Pad cannot apply at node '/encoder/Pad': Pad gradient supports"
        + " mode 'constant' only, got 'reflect'", d.message());
    assertFalse(d.message().contains("ops with rules"), d.message());
  }

  @Test
  void anIndexComputedFromTheDataIsNamedAsSuch() {
    CompileResult r = GraftCompiler.compile(lora("Sliced", "tiny-slice"), sliceAtARunTimeOffset());
    assertFalse(r.ok());
    assertEquals(1, r.diagnostics().size(), r.diagnostics().toString());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.DATA_DEPENDENT_INDEX, d.code(), d.message());
    assertTrue(d.message().startsWith("[GRAFT180] cannot differentiate Slice at node '/encoder/Slice': its starts"),
        d.message());
    assertFalse(d.message().contains("ops with rules"), d.message());
  }
}
