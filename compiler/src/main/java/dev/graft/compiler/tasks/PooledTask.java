package dev.graft.compiler.tasks;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.Pooling;
import dev.graft.compiler.passes.GatheredAdapters;
import dev.graft.spec.manifest.GatheredRole;
import dev.graft.spec.manifest.GatheredTensor;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * A task with a pooled linear head (classification, regression, multi-label): pools a {@code
 * [batch, sequence, hidden]} host output (mask-aware mean over the tokens whose {@code
 * attention_mask} is 1, or the first token) and applies {@code z = pooled · W + b}, W {@code
 * [hidden, n]} normal(0, 0.02) saved transposed as a Hugging Face sequence-classification head
 * (a module to save), b zero and not decayed.
 */
abstract class PooledTask extends TaskKind {
  static final String WEIGHT = "classifier.weight";
  static final String BIAS = "classifier.bias";
  /** PEFT's key prefix of the head (a Hugging Face sequence-classification head, a module to save). */
  static final String HEAD_KEY = "base_model.model.classifier.";

  /** The head's outputs: classes, targets, labels. */
  abstract int headOutputs(TaskSpec task);

  abstract ClassificationSpec.Pooling pooling(TaskSpec task);

  /** The {@code pooling} member of a declaring annotation. */
  static ClassificationSpec.Pooling pooling(Members members) {
    return ClassificationSpec.Pooling.valueOf(members.constant("pooling"));
  }

  @Override
  public final boolean hasHead() {
    return true;
  }

  @Override
  public final String peftTaskType() {
    return "SEQ_CLS";
  }

  @Override
  public final long outputs(TaskSpec task, long size) {
    return headOutputs(task);
  }

  @Override
  public final @Nullable Diagnostic checkOutput(TaskSpec task, String output, @Nullable TensorType t) {
    boolean shaped = t != null && t.hasRank() && t.rank() == 3 && t.dim(2).isKnown() && t.isFloating();
    return shaped ? null : Diagnostic.of(ErrorCode.HEAD_OUTPUT_SHAPE, task.source(), "output", output, t);
  }

  @Override
  final Head addHead(Graph graph, TaskSpec task, String output, long size, List<Parameter> params) {
    int elem = graph.typeOrThrow(output).elemType();
    int n = headOutputs(task);
    String pooled = pool(graph, pooling(task), output, elem);
    graph.addInput(WEIGHT, TensorType.of(elem, size, n));
    graph.addInput(BIAS, TensorType.of(elem, n));
    String z = graph.op("/classifier/MatMul", "MatMul", List.of(pooled, WEIGHT));
    String result = graph.opTo(free(graph, outputName()), "/classifier/Add", "Add", List.of(z, BIAS));
    params.add(Parameter.newBuilder().setName(WEIGHT).setSite("classifier").addShape(size).addShape(n)
        .setRole(ParameterRole.HEAD_WEIGHT).setInit(Init.NORMAL).setInitScale(0.02)
        .setSaveKey(HEAD_KEY + "weight").addSaveShape(n).addSaveShape(size).setSaveTransposed(true).build());
    params.add(Parameter.newBuilder().setName(BIAS).setSite("classifier").addShape(n)
        .setRole(ParameterRole.HEAD_BIAS).setInit(Init.ZEROS).setNoDecay(true)
        .setSaveKey(HEAD_KEY + "bias").addSaveShape(n).build());
    return new Head(result, pooled);
  }

  /**
   * The gathered head: {@code z[i] = pooled[i] · W[index[i]] + b[index[i]]} with W stacked {@code
   * [adapters, hidden, n]} and b {@code [adapters, n]} (each adapter's own trained head; row 0, no
   * adapter, zeros).
   */
  @Override
  final String addGatheredHead(Graph graph, TaskSpec task, String output, long size, List<GatheredTensor> stacked) {
    int elem = graph.typeOrThrow(output).elemType();
    int n = headOutputs(task);
    String pooled = pool(graph, pooling(task), output, elem);
    String w = "gathered/" + WEIGHT;
    String b = "gathered/" + BIAS;
    GatheredAdapters.addStack(graph, w, elem, GatheredAdapters.RANK, size, n);
    GatheredAdapters.addStack(graph, b, elem, GatheredAdapters.RANK, n);
    String axis = graph.longs("/classifier/axis_row", List.of(1L));
    String rows = graph.op("/classifier/Unsqueeze", "Unsqueeze", List.of(pooled, axis));
    String z3 = graph.op("/classifier/MatMul", "MatMul", List.of(rows, GatheredAdapters.rows(graph, "/classifier/W", w)));
    String z = graph.op("/classifier/Squeeze", "Squeeze", List.of(z3, axis));
    String result = graph.opTo(free(graph, outputName()), "/classifier/Add", "Add",
        List.of(z, GatheredAdapters.rows(graph, "/classifier/b", b)));
    stacked.add(GatheredTensor.newBuilder().setName(w).setRole(GatheredRole.HEAD).setSite("classifier")
        .addShape(size).addShape(n).setSource(WEIGHT).build());
    stacked.add(GatheredTensor.newBuilder().setName(b).setRole(GatheredRole.HEAD).setSite("classifier")
        .addShape(n).setSource(BIAS).build());
    return result;
  }

  /** The float targets input {@code [batch, outputs]} of the host's element type (regression, multi-label). */
  final String addTargets(Graph graph, TaskSpec task, TensorType hostOutput) {
    graph.addInput(labelsName(), TensorType.of(hostOutput.elemType(), List.of(hostOutput.dim(0), Dim.of(headOutputs(task)))));
    return labelsName();
  }

  @Override
  public final Optional<ClassificationHead> manifestHead(TaskSpec task, String hostOutput, long size) {
    return Optional.of(ClassificationHead.newBuilder()
        .setNumLabels(headOutputs(task))
        .setPooling(pooling(task) == ClassificationSpec.Pooling.MEAN ? Pooling.MEAN : Pooling.FIRST_TOKEN)
        .setHostOutput(hostOutput)
        .setHiddenSize(size)
        .build());
  }

  private static String pool(Graph graph, ClassificationSpec.Pooling pooling, String output, int elem) {
    if (pooling == ClassificationSpec.Pooling.FIRST_TOKEN) {
      return graph.op("/head/first_token", "Gather", List.of(output, graph.constant("/head/first", Tensors.longs("first", List.of(), List.of(0L)))),
          attr("axis", 1L));
    } else if (graph.inputs().containsKey(MASK_INPUT)) {
      String mask = graph.op("/head/mask", "Cast", List.of(MASK_INPUT), attr("to", (long) elem));
      String mask3 = graph.op("/head/mask3", "Unsqueeze", List.of(mask, graph.longs("/head/axis_last", List.of(-1L))));
      String masked = graph.op("/head/masked", "Mul", List.of(output, mask3));
      String axis1 = graph.longs("/head/axis_seq", List.of(1L));
      String summed = graph.op("/head/sum", "ReduceSum", List.of(masked, axis1), attr("keepdims", 0L));
      String count = graph.op("/head/count", "ReduceSum", List.of(mask3, axis1), attr("keepdims", 0L));
      String safe = graph.op("/head/count_min", "Max", List.of(count, graph.scalar("/head/eps", elem, 1e-9)));
      return graph.op("/head/mean", "Div", List.of(summed, safe));
    }
    return graph.op("/head/mean", "ReduceMean", List.of(output), attr("axes", List.of(1L)), attr("keepdims", 0L));
  }

}
