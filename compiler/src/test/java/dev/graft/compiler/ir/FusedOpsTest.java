package dev.graft.compiler.ir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.spec.onnx.Onnx.FunctionProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.OperatorSetIdProto;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The fused ops' export: each used op's function once, the dev.graft opset, the outputs' types. */
class FusedOpsTest {
  @Test
  void anExportedGraphCarriesTheFunctionsOfTheFusedOpsItUses() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, 2, 3));
    g.addInput("dy", TensorType.of(TensorType.FLOAT, 2, 3));
    String a = g.add("a", FusedOps.GELU_GRAD, Graph.GRAFT_DOMAIN, List.of("dy", "x"), 1, Node.attrs()).get(0);
    String b = g.add("b", FusedOps.GELU_GRAD, Graph.GRAFT_DOMAIN, List.of(a, "x"), 1, Node.attrs()).get(0);
    String c = g.add("c", FusedOps.SOFTMAX_GRAD, Graph.GRAFT_DOMAIN, List.of(b, "x"), 1, Node.attrs()).get(0);
    String s = g.stopGradient("s", c);
    g.outputs().add(s);
    ShapeInference.run(g);
    ModelProto m = OnnxExport.write(g, "t");
    assertEquals(List.of(FusedOps.GELU_GRAD, FusedOps.SOFTMAX_GRAD),
        m.getFunctionsList().stream().map(FunctionProto::getName).toList());
    assertTrue(m.getFunctionsList().stream().allMatch(f -> f.getDomain().equals(Graph.GRAFT_DOMAIN)));
    assertTrue(m.getOpsetImportList().contains(
        OperatorSetIdProto.newBuilder().setDomain(Graph.GRAFT_DOMAIN).setVersion(FusedOps.VERSION).build()));
    assertEquals(List.of(a, b, c), m.getGraph().getValueInfoList().stream().map(v -> v.getName()).toList(),
        "the fused outputs' types are stated");
    assertEquals("Identity", m.getGraph().getNode(3).getOpType(), "the stop-gradient is still written as Identity");
  }

  @Test
  void aGraphWithoutFusedOpsImportsNoGraftOpset() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, 2));
    g.outputs().add(g.stopGradient("s", "x"));
    ModelProto m = OnnxExport.write(g, "t");
    assertEquals(0, m.getFunctionsCount());
    assertTrue(m.getOpsetImportList().stream().noneMatch(o -> o.getDomain().equals(Graph.GRAFT_DOMAIN)));
    assertFalse(FusedOps.isFused(g.nodes().get(0)));
  }

  @Test
  void everyFusedOpHasABodyOfStandardOpsAndOtherNamesHaveNone() {
    for (String op : List.of(FusedOps.GELU_GRAD, FusedOps.SOFTMAX_GRAD, FusedOps.LAYER_NORM_GRAD)) {
      FunctionProto f = FusedOps.function(op);
      assertEquals(op, f.getName());
      assertEquals("dx", f.getOutput(0));
      assertTrue(f.getNodeList().stream().allMatch(n -> n.getDomain().isEmpty()), op + " uses ai.onnx ops only");
    }
    assertThrows(IllegalArgumentException.class, () -> FusedOps.function("StopGradient"));
  }

  @Test
  void shapeInferenceGivesAFusedOutputTheTypeOfTheForwardValue() {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(TensorType.FLOAT, 4, 5));
    g.addInput("dy", TensorType.of(TensorType.FLOAT, 4, 5));
    String dx = g.add("a", FusedOps.LAYER_NORM_GRAD, Graph.GRAFT_DOMAIN, List.of("dy", "x", "x", "x", "x"), 1,
        Node.attrs()).get(0);
    g.outputs().add(dx);
    ShapeInference.run(g);
    assertEquals(TensorType.of(TensorType.FLOAT, 4, 5), g.type(dx));
  }
}
