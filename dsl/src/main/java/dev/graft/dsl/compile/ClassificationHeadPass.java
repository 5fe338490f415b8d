package dev.graft.dsl.compile;

import static dev.graft.dsl.ir.Node.attr;

import dev.graft.dsl.ir.Graph;
import dev.graft.dsl.ir.TensorType;
import dev.graft.dsl.ir.Tensors;
import dev.graft.dsl.spec.ClassificationSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.List;

/**
 * Head pass: pools a [batch, sequence, hidden] host output (mask-aware mean over the tokens
 * whose {@code attention_mask} is 1, or the first token), applies {@code logits = pooled · W +
 * b}, and in training graphs adds the mean softmax cross-entropy against an int64 {@code
 * labels} input. Guarantees: the graph's outputs become {@code logits} (and {@code loss}).
 */
final class ClassificationHeadPass {
  static final String LOGITS = "logits";
  static final String LOSS = "loss";
  static final String LABELS = "labels";
  static final String WEIGHT = "classifier.weight";
  static final String BIAS = "classifier.bias";
  static final String MASK_INPUT = "attention_mask";

  private ClassificationHeadPass() {}

  static List<Parameter> add(Graph graph, ClassificationSpec spec, String output, long hidden, boolean training) {
    int elem = graph.typeOrThrow(output).elemType();
    String pooled;
    if (spec.pooling() == ClassificationSpec.Pooling.FIRST_TOKEN) {
      pooled = graph.op("/head/first_token", "Gather", List.of(output, graph.constant("/head/first", Tensors.longs("first", List.of(), List.of(0L)))),
          attr("axis", 1L));
    } else if (graph.inputs().containsKey(MASK_INPUT)) {
      String mask = graph.op("/head/mask", "Cast", List.of(MASK_INPUT), attr("to", (long) elem));
      String mask3 = graph.op("/head/mask3", "Unsqueeze", List.of(mask, graph.longs("/head/axis_last", List.of(-1L))));
      String masked = graph.op("/head/masked", "Mul", List.of(output, mask3));
      String axis1 = graph.longs("/head/axis_seq", List.of(1L));
      String summed = graph.op("/head/sum", "ReduceSum", List.of(masked, axis1), attr("keepdims", 0L));
      String count = graph.op("/head/count", "ReduceSum", List.of(mask3, axis1), attr("keepdims", 0L));
      String safe = graph.op("/head/count_min", "Max", List.of(count, graph.scalar("/head/eps", elem, 1e-9)));
      pooled = graph.op("/head/mean", "Div", List.of(summed, safe));
    } else {
      pooled = graph.op("/head/mean", "ReduceMean", List.of(output), attr("axes", List.of(1L)), attr("keepdims", 0L));
    }
    graph.addInput(WEIGHT, TensorType.of(elem, hidden, spec.numLabels()));
    graph.addInput(BIAS, TensorType.of(elem, spec.numLabels()));
    String z = graph.op("/classifier/MatMul", "MatMul", List.of(pooled, WEIGHT));
    graph.opTo(LOGITS, "/classifier/Add", "Add", List.of(z, BIAS));
    graph.outputs().clear();
    graph.outputs().add(LOGITS);
    if (training) {
      graph.addInput(LABELS, new TensorType(TensorType.INT64, List.of(graph.typeOrThrow(output).dim(0))));
      String lsm = graph.op("/loss/LogSoftmax", "LogSoftmax", List.of(LOGITS), attr("axis", -1L));
      String labels2 = graph.op("/loss/labels", "Unsqueeze", List.of(LABELS, graph.longs("/loss/axis", List.of(1L))));
      String picked = graph.op("/loss/picked", "GatherElements", List.of(lsm, labels2), attr("axis", 1L));
      String mean = graph.op("/loss/mean", "ReduceMean", List.of(picked), attr("axes", List.of(0L, 1L)), attr("keepdims", 0L));
      graph.opTo(LOSS, "/loss/Neg", "Neg", List.of(mean));
      graph.outputs().add(LOSS);
    }
    Parameter w = Parameter.newBuilder().setName(WEIGHT).setSite("classifier").addShape(hidden)
        .addShape(spec.numLabels()).setRole(ParameterRole.HEAD_WEIGHT).setInit(Init.NORMAL)
        .setInitScale(0.02).build();
    Parameter b = Parameter.newBuilder().setName(BIAS).setSite("classifier").addShape(spec.numLabels())
        .setRole(ParameterRole.HEAD_BIAS).setInit(Init.ZEROS).build();
    return List.of(w, b);
  }

}
