package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Less common forms of the registered ops: default attributes, optional inputs left out,
 * negative indices, and the forms the rules refuse. Finite differences use the float64
 * defaults of {@link GradCheck}.
 */
class GradientEdgeCaseTest {
  private static final int F64 = TensorType.DOUBLE;

  static long[] s(long... dims) {
    return dims;
  }

  @Test
  void softmaxAndLogSoftmaxDefaultAxisIsLast() {
    GradCheck.float64(1).param("x", s(2, 3, 4), -2, 2).check("Softmax", g -> g.op("sm", "Softmax", List.of("x")));
    GradCheck.float64(2).param("x", s(2, 3, 4), -2, 2).check("LogSoftmax", g -> g.op("lsm", "LogSoftmax", List.of("x")));
  }

  @Test
  void dropoutInInferenceModeIsIdentity() {
    // ratio given, training_mode left out: inference mode, y = x, so dy/dx = 1 (not 1/(1-ratio)).
    GradCheck.float64(3).param("x", s(2, 3), -1, 1).check("Dropout", g -> g.add("drop", "Dropout", "",
        List.of("x", g.scalar("ratio", F64, 0.3)), 2, Node.attrs()).get(0));
  }

  @Test
  void dropoutWithoutOptionalInputs() {
    // Dropout(x) with its mask output: default ratio 0.5, inference mode, y = x.
    GradCheck.float64(4).param("x", s(2, 3), -1, 1).check("Dropout", g -> g.add("drop", "Dropout", "",
        List.of("x"), 2, Node.attrs()).get(0));
  }

  @Test
  void reduceSumNoopWithEmptyAxes() {
    GradCheck.float64(5).param("x", s(2, 3), -1, 1).check("ReduceSum", g -> g.op("rs", "ReduceSum", List.of("x"),
        attr("keepdims", 0L), attr("noop_with_empty_axes", 1L)));
  }

  @Test
  void gatherWithNegativeIndices() {
    GradCheck.float64(6).retypeUntypedGradients().param("table", s(5, 2), -1, 1).int64("ids", s(3), new long[] {-1, 0, -1})
        .check("Gather", g -> g.op("emb", "Gather", List.of("table", "ids")));
  }

  @Test
  void gatherScalarIndexAlongAxisOneLikeFirstTokenPooling() {
    GradCheck.float64(7).retypeUntypedGradients().param("x", s(2, 3, 4), -1, 1).check("Gather", g -> g.op("first",
        "Gather", List.of("x", g.constant("zero", dev.graft.compiler.ir.Tensors.longs("zero", List.of(), List.of(0L)))),
        attr("axis", 1L)));
  }

  @Test
  void gatherElementsWithNegativeIndices() {
    GradCheck.float64(8).param("x", s(2, 3), -1, 1).int64("idx", s(2, 2), new long[] {-1, 0, -3, -3})
        .check("GatherElements", g -> g.op("ge", "GatherElements", List.of("x", "idx"), attr("axis", 1L)));
  }

  @Test
  void sliceWithExplicitUnitStepsAndNegativeAxes() {
    GradCheck.float64(9).param("x", s(3, 4, 5), -1, 1).check("Slice", g -> g.op("sl", "Slice", List.of("x",
        g.longs("starts", List.of(-3L, 1L)), g.longs("ends", List.of(-1L, 100L)), g.longs("axes", List.of(-1L, 0L)),
        g.longs("steps", List.of(1L, 1L)))));
  }

  @Test
  void sliceWithStepTwo() {
    // Non-unit steps scatter the gradient back (they were refused before issue 3).
    GradCheck.float64(10).param("x", s(6), -1, 1)
        .check("Slice", g -> g.op("sl", "Slice", List.of("x", g.longs("starts", List.of(0L)),
            g.longs("ends", List.of(6L)), g.longs("axes", List.of(0L)), g.longs("steps", List.of(2L)))));
  }

  @Test
  void matmulWithVectorOperandIsRefused() {
    MissingGradientException e = assertThrows(MissingGradientException.class, () -> GradCheck.float64(11)
        .param("a", s(3, 4), -1, 1).param("v", s(4), -1, 1)
        .build("MatMul", g -> g.op("mv", "MatMul", List.of("a", "v"))));
    assertTrue(e.getMessage().contains("rank >= 2"), e.getMessage());
  }

  @Test
  void castFromIntegerCarriesNoGradient() {
    // An int64 input cast to float joins the path: only the float parameter gets a gradient.
    GradCheck.float64(12).param("x", s(2, 3), -1, 1).int64("k", s(2, 3), new long[] {1, 2, 3, 4, 5, 6})
        .check("Cast", g -> g.op("mul", "Mul", List.of("x", g.op("c", "Cast", List.of("k"), attr("to", (long) F64)))));
  }

  @Test
  void squeezeAndUnsqueezeWithNegativeAxes() {
    GradCheck.float64(13).param("x", s(2, 1, 3), -1, 1).check("Squeeze", g -> g.op("u", "Unsqueeze",
        List.of(g.op("sq", "Squeeze", List.of("x", g.longs("a", List.of(-2L)))), g.longs("b", List.of(-1L)))));
  }

  @Test
  void powWithParameterExponentOnly() {
    GradCheck.float64(14).frozen("x", s(2, 3), 0.5, 2).param("p", s(), 0.5, 2)
        .check("Pow", g -> g.op("pow", "Pow", List.of("x", "p")));
  }
}
