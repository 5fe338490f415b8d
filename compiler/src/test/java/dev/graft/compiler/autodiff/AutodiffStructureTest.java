package dev.graft.compiler.autodiff;

import static dev.graft.compiler.ir.Node.attr;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What Autodiff differentiates and what it refuses to, and a self-test of the FD harness. */
class AutodiffStructureTest {
  private static final int F64 = TensorType.DOUBLE;

  /**
   * x (frozen input) → {@code prefixOps} × Tanh → MatMul(·, w) → Exp → ReduceSum = loss, with
   * a frozen side branch Sigmoid(x) added to the loss. Returns the graph before differentiation.
   */
  private static Graph prefixed(int prefixOps, String sideOp) {
    Graph g = new Graph();
    g.addInput("x", TensorType.of(F64, 2, 3));
    g.addInput("w", TensorType.of(F64, 3, 4));
    String h = "x";
    for (int i = 0; i < prefixOps; i++) {
      h = g.op("/prefix/Tanh", "Tanh", List.of(h));
    }
    String z = g.op("/body/MatMul", "MatMul", List.of(h, "w"));
    String e = g.op("/body/Exp", "Exp", List.of(z));
    String main = g.op("/body/ReduceSum", "ReduceSum", List.of(e), attr("keepdims", 0L));
    String side = g.op("/side/op", sideOp, List.of("x"));
    String sideSum = g.op("/side/ReduceSum", "ReduceSum", List.of(side), attr("keepdims", 0L));
    String loss = g.op("/loss", "Add", List.of(main, sideSum));
    g.outputs().add(loss);
    ShapeInference.run(g);
    return g;
  }

  private static List<Node> backwardNodes(Graph g, int forwardCount) {
    return new ArrayList<>(g.nodes().subList(forwardCount, g.nodes().size()));
  }

  @Test
  void frozenPrefixAndSideBranchGetNoBackwardNodes() {
    Graph shortPrefix = prefixed(1, "Sigmoid");
    int fwd1 = shortPrefix.nodes().size();
    Autodiff.differentiate(shortPrefix, shortPrefix.outputs().get(0), List.of("w"));
    Graph longPrefix = prefixed(5, "Sigmoid");
    int fwd5 = longPrefix.nodes().size();
    Autodiff.differentiate(longPrefix, longPrefix.outputs().get(0), List.of("w"));

    List<Node> back1 = backwardNodes(shortPrefix, fwd1);
    List<Node> back5 = backwardNodes(longPrefix, fwd5);
    assertFalse(back1.isEmpty());
    assertEquals(back1.size(), back5.size(), "a longer frozen prefix adds no backward nodes");
    for (Node n : back5) {
      assertTrue(n.name().startsWith("/grad/"), "backward node named /grad/...: " + n.name());
      assertFalse(n.name().startsWith("/grad/prefix") || n.name().startsWith("/grad/side"),
          "no gradient for frozen node: " + n.name());
    }
    // The forward nodes are untouched.
    assertEquals(fwd5, longPrefix.nodes().stream().filter(n -> !n.name().startsWith("/grad/")).count());
  }

  @Test
  void opWithoutRuleOffThePathIsFine() {
    // Sin has no rule, but it only sees the frozen input: nothing to differentiate. (An op that
    // shape inference does not know either, e.g. Hardmax, would leave the final Add untyped and
    // so fail the Add rule's unbroadcast: see the report.)
    Graph g = prefixed(2, "Sin");
    int before = g.nodes().size();
    Map<String, String> grads = Autodiff.differentiate(g, g.outputs().get(0), List.of("w"));
    assertTrue(g.nodes().size() > before);
    assertEquals(TensorType.of(F64, 3, 4), g.type(grads.get("w")));
  }

  @Test
  void opWithoutRuleOnThePathNamesOpAndNode() {
    Graph g = new Graph();
    g.addInput("w", TensorType.of(F64, 2, 3));
    // Mod: known to shape inference, without a gradient rule (Sin, used here before, has one now).
    String hm = g.op("/layer/Mod", "Mod", List.of("w", g.scalar("three", F64, 3)), attr("fmod", 1L));
    String loss = g.op("/loss", "ReduceSum", List.of(g.op("/sq", "Mul", List.of(hm, "w"))), attr("keepdims", 0L));
    ShapeInference.run(g);
    assertEquals(TensorType.of(F64), g.type(loss));
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, loss, List.of("w")));
    assertEquals("/layer/Mod", e.node().name());
    assertTrue(e.getMessage().contains("Mod") && e.getMessage().contains("'/layer/Mod'"), e.getMessage());
  }

  @Test
  void softplusOnThePathNamesOpAndNode() {
    // Softplus is unknown to shape inference as well (Softplus, used here before, is
    // now registered as non-differentiable: its output is piecewise constant), so the types of the values after it are
    // set by hand here (as a host's value_info would give them).
    Graph g = new Graph();
    g.addInput("w", TensorType.of(F64, 2, 3));
    String hm = g.op("/layer/Softplus", "Softplus", List.of("w"));
    String prod = g.op("/sq", "Mul", List.of(hm, "w"));
    String loss = g.op("/loss", "ReduceSum", List.of(prod), attr("keepdims", 0L));
    ShapeInference.run(g);
    g.types().put(hm, TensorType.of(F64, 2, 3));
    g.types().put(prod, TensorType.of(F64, 2, 3));
    g.types().put(loss, TensorType.of(F64));
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, loss, List.of("w")));
    assertEquals("/layer/Softplus", e.node().name());
    assertTrue(e.getMessage().contains("Softplus") && e.getMessage().contains("'/layer/Softplus'"), e.getMessage());
  }

  @Test
  void softplusWithoutTypesStillGivesMissingGradient() {
    Graph g = new Graph();
    g.addInput("w", TensorType.of(F64, 2, 3));
    String hm = g.op("/layer/Softplus", "Softplus", List.of("w"));
    String loss = g.op("/loss", "ReduceSum", List.of(g.op("/sq", "Mul", List.of(hm, "w"))), attr("keepdims", 0L));
    ShapeInference.run(g);
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, loss, List.of("w")));
    assertTrue(e.getMessage().contains("Softplus"), e.getMessage());
  }

  @Test
  void customDomainOpOnThePathIsRefused() {
    Graph g = new Graph();
    g.addInput("w", TensorType.of(F64, 2, 3));
    // A custom-domain op even with an ai.onnx name that has a rule (Tanh) must not use that rule.
    String custom = g.add("/layer/custom", "Tanh", "com.example", List.of("w"), 1, Node.attrs()).get(0);
    g.types().put(custom, TensorType.of(F64, 2, 3));
    String loss = g.op("/loss", "ReduceSum", List.of(custom), attr("keepdims", 0L));
    ShapeInference.run(g);
    MissingGradientException e = assertThrows(MissingGradientException.class,
        () -> Autodiff.differentiate(g, loss, List.of("w")));
    assertEquals("/layer/custom", e.node().name());
    assertTrue(e.getMessage().contains("/layer/custom"), e.getMessage());
  }

  @Test
  void parameterOffThePathGetsZeros() throws Exception {
    Graph g = new Graph();
    g.addInput("w", TensorType.of(F64, 2, 3));
    g.addInput("unused", TensorType.of(F64, 4));
    String loss = g.op("/loss", "ReduceSum", List.of(g.op("/exp", "Exp", List.of("w"))), attr("keepdims", 0L));
    ShapeInference.run(g);
    Map<String, String> grads = Autodiff.differentiate(g, loss, List.of("w", "unused"));
    g.outputs().addAll(List.of(loss, grads.get("unused")));
    try (OrtSession s = GradCheck.session(OnnxExport.write(g, "zeros").toByteArray())) {
      var feeds = new java.util.HashMap<String, ai.onnxruntime.OnnxTensor>();
      feeds.put("w", GradCheck.tensor(F64, new double[6], new long[] {2, 3}));
      feeds.put("unused", GradCheck.tensor(F64, new double[] {1, 2, 3, 4}, new long[] {4}));
      double[] z = GradCheck.run(s, feeds, List.of(grads.get("unused"))).get(grads.get("unused"));
      assertEquals(4, z.length);
      for (double v : z) {
        assertEquals(0.0, v);
      }
    }
  }

  /**
   * The harness must be able to fail: a deliberately wrong rule for Abs (passing the gradient
   * through unchanged, i.e. ignoring the sign) replaces the real one for the duration of the test.
   */
  @Test
  @org.junit.jupiter.api.parallel.ResourceLock("GradientRegistry.RULES")
  @SuppressWarnings("unchecked")
  void harnessRejectsAWrongGradient() throws Exception {
    Field f = GradientRegistry.class.getDeclaredField("RULES");
    f.setAccessible(true);
    Map<String, GradientRule> rules = (Map<String, GradientRule>) f.get(null);
    GradientRule real = rules.put("Abs", (n, gs, c) -> List.of(gs.get(0)));
    try {
      AssertionError e = assertThrows(AssertionError.class, () -> GradCheck.float64(1)
          .paramAwayFromZero("x", new long[] {3, 4}, 0.1, 1).check("Abs", g -> g.op("abs", "Abs", List.of("x"))));
      assertTrue(e.getMessage().contains("d loss/d x["), e.getMessage());
    } finally {
      rules.put("Abs", real);
    }
    assertTrue(real != null && GradientRegistry.rule("Abs") == real, "the real Abs rule is back");
  }
}
