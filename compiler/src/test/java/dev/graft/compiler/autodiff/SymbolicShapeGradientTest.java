package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.ir.Dim;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Finite-difference checks (float64, the {@link GradCheck} defaults) of rules on values whose
 * shapes are symbolic ({@code batch}, {@code seq}), as in a real host: the rules then cannot
 * read sizes from the types and must take them from the graph at run time.
 */
class SymbolicShapeGradientTest {
  private static final Dim B = Dim.symbol("batch");
  private static final Dim S = Dim.symbol("seq");

  static long[] s(long... dims) {
    return dims;
  }

  @Test
  void biasAddOverSymbolicBatch() {
    GradCheck.float64(1).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4)).param("b", s(4), -1, 1)
        .check("Add", g -> g.op("add", "Add", List.of("x", "b")));
  }

  @Test
  void maskMultiplyBroadcastsOverHidden() {
    GradCheck.float64(2).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4))
        .param("m", s(2, 3, 1), -1, 1).declare("m", B, S, Dim.of(1))
        .check("Mul", g -> g.op("mul", "Mul", List.of("x", "m")));
  }

  @Test
  void linearLayerWithSymbolicBatch() {
    GradCheck.float64(3).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4)).param("w", s(4, 5), -1, 1)
        .check("MatMul", g -> g.op("mm", "MatMul", List.of("x", "w")));
  }

  @Test
  void attentionScoresWithSymbolicSequence() {
    GradCheck.float64(4).param("q", s(2, 2, 3, 4), -1, 1).declare("q", B, Dim.of(2), S, Dim.of(4))
        .param("k", s(2, 2, 4, 3), -1, 1).declare("k", B, Dim.of(2), Dim.of(4), S)
        .check("Softmax", g -> g.op("sm", "Softmax",
            List.of(g.op("mm", "MatMul", List.of("q", "k"))), attr("axis", -1L)));
  }

  @Test
  void meanOverSymbolicSequence() {
    GradCheck.float64(5).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4))
        .check("ReduceMean", g -> g.op("rm", "ReduceMean", List.of("x"), attr("axes", List.of(1L)), attr("keepdims", 0L)));
  }

  @Test
  void meanOverLastAxisLikeLayerNorm() {
    GradCheck.float64(6).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4)).check("ReduceMean", g -> {
      String mean = g.op("rm", "ReduceMean", List.of("x"), attr("axes", List.of(-1L)));
      String d = g.op("sub", "Sub", List.of("x", mean));
      String var = g.op("rm2", "ReduceMean", List.of(g.op("sq", "Mul", List.of(d, d))), attr("axes", List.of(-1L)));
      String std = g.op("sqrt", "Sqrt", List.of(g.op("eps", "Add",
          List.of(var, g.scalar("eps", dev.graft.compiler.ir.TensorType.DOUBLE, 1e-3)))));
      return g.op("div", "Div", List.of(d, std));
    });
  }

  @Test
  void sumOverSymbolicSequence() {
    GradCheck.float64(7).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4))
        .check("ReduceSum", g -> g.op("rs", "ReduceSum", List.of("x", g.longs("axes", List.of(1L))), attr("keepdims", 0L)));
  }

  @Test
  void concatAlongSymbolicAxis() {
    GradCheck.float64(8).param("a", s(2, 3, 4), -1, 1).declare("a", B, S, Dim.of(4))
        .param("b", s(2, 1, 4), -1, 1).declare("b", B, Dim.of(1), Dim.of(4))
        .check("Concat", g -> g.op("cat", "Concat", List.of("a", "b"), attr("axis", 1L)));
  }

  @Test
  void expandToAComputedShape() {
    GradCheck.float64(9).param("x", s(1, 1, 4), -1, 1).frozen("like", s(2, 3, 4), -1, 1).declare("like", B, S, Dim.of(4))
        .check("Expand", g -> g.op("e", "Expand", List.of("x", g.op("shape", "Shape", List.of("like")))));
  }

  @Test
  void splitHeadsReshapeTranspose() {
    GradCheck.float64(10).param("x", s(2, 3, 4), -1, 1).declare("x", B, S, Dim.of(4)).check("Reshape", g -> {
      String r = g.op("r", "Reshape", List.of("x", g.longs("shape", List.of(0L, 0L, 2L, 2L))));
      return g.op("t", "Transpose", List.of(r), attr("perm", List.of(0L, 2L, 1L, 3L)));
    });
  }

  @Test
  void whereWithSymbolicShapes() {
    GradCheck.float64(11).frozen("c", s(2, 3), -1, 1).declare("c", B, S).param("x", s(2, 3), -1, 1).declare("x", B, S)
        .param("y", s(2, 1), -1, 1).declare("y", B, Dim.of(1))
        .check("Where", g -> g.op("w", "Where", List.of(g.op("gt", "Greater",
            List.of("c", g.scalar("zero", dev.graft.compiler.ir.TensorType.DOUBLE, 0))), "x", "y")));
  }

  /**
   * Shapes that cannot say whether an axis was broadcast (the middle dims of both operands are
   * unknown, as for a size computed from the data): the gradient reads the pattern at run time,
   * summing m's gradient over its size-1 axis and leaving x's alone.
   */
  @Test
  void mulWithUnknownDimsReadsTheBroadcastPatternAtRunTime() {
    GradCheck.float64(14).param("x", s(2, 3, 4), -1, 1).declare("x", B, Dim.unknown(), Dim.of(4))
        .param("m", s(2, 1, 4), -1, 1).declare("m", B, Dim.unknown(), Dim.of(4))
        .check("Mul", g -> g.op("mul", "Mul", List.of("x", "m")));
  }

  @Test
  void embeddingLookupWithSymbolicIds() {
    GradCheck c = GradCheck.float64(12).retypeUntypedGradients().param("table", s(7, 3), -1, 1)
        .int64("ids", s(2, 4), new long[] {0, 3, 3, 6, 1, 0, 3, 2});
    c.declare("ids", B, S).check("Gather", g -> g.op("emb", "Gather", List.of("table", "ids"), attr("axis", 0L)));
  }

  @Test
  void sliceOfSymbolicAxisIsRefusedWithMissingGradient() {
    // Documented limitation of the Slice rule: unit steps over fixed-size axes only.
    MissingGradientException e = assertThrows(MissingGradientException.class, () -> GradCheck.float64(13)
        .param("x", s(2, 5), -1, 1).declare("x", B, S).build("Slice", g -> g.op("sl", "Slice", List.of("x",
            g.longs("starts", List.of(1L)), g.longs("ends", List.of(3L)), g.longs("axes", List.of(1L))))));
    assertTrue(e.getMessage().contains("Slice"), e.getMessage());
  }
}
