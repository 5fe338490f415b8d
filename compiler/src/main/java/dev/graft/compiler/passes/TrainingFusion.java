package dev.graft.compiler.passes;

import dev.graft.compiler.ir.FusedOps;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.ir.TensorType;
import java.util.ArrayList;
import java.util.List;

/**
 * Training-graph pass, after autodiff: the forward's LayerNormalizations that Graft's fused {@code
 * dev.graft:LayerNorm} covers (float32, over the last axis, float statistics, a 1-D scale and a
 * 1-D bias) become that op, keeping the node's name and outputs (the backward reads its Mean and
 * InvStdDev by name; outputs it lacked get fresh names). The inference graph keeps ONNX Runtime's
 * LayerNormalization: exported models carry no Graft op.
 *
 * <p>Needs: a shape-inferred graph. Guarantees: values and their types unchanged.
 */
public final class TrainingFusion {
  private TrainingFusion() {}

  /** Rewrites {@code train} in place; returns how many LayerNormalizations became fused ones. */
  public static int apply(Graph train) {
    int fused = 0;
    for (Node n : List.copyOf(train.nodes())) {
      if (!fusable(train, n)) {
        continue;
      }
      List<String> outputs = new ArrayList<>(n.outputs());
      while (outputs.size() < 3) {
        outputs.add("");
      }
      for (int i = 1; i < 3; i++) {
        if (outputs.get(i).isEmpty()) {
          outputs.set(i, train.freshValue(n.name() + (i == 1 ? "/mean" : "/inv_std")));
        }
      }
      train.replaceNode(n, new Node(n.name(), FusedOps.LAYER_NORM, Graph.GRAFT_DOMAIN, n.inputs(), outputs,
          Node.attrs(Node.attr("epsilon", n.attrFloat("epsilon", 1e-5f)))));
      fused++;
    }
    return fused;
  }

  private static boolean fusable(Graph g, Node n) {
    if (!n.domain().isEmpty() || !n.opType().equals("LayerNormalization") || n.inputs().size() != 3
        || n.input(2).isEmpty() || n.attrInt("stash_type", 1) != 1) {
      return false;
    }
    TensorType x = g.type(n.input(0));
    TensorType scale = g.type(n.input(1));
    TensorType bias = g.type(n.input(2));
    if (x == null || scale == null || bias == null || !x.hasRank() || x.elemType() != TensorType.FLOAT) {
      return false;
    }
    long axis = n.attrInt("axis", -1);
    return (axis == -1 || axis == x.rank() - 1) && scale.hasRank() && scale.rank() == 1 && bias.hasRank()
        && bias.rank() == 1;
  }
}
