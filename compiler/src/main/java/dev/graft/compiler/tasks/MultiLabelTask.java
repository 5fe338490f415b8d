package dev.graft.compiler.tasks;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.MultiLabelSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Loss;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Multi-label classification: a pooled head to {@code numLabels} independent logits, trained with
 * binary cross-entropy with logits against float 0/1 targets {@code [batch, numLabels]}.
 */
final class MultiLabelTask extends PooledTask {
  @Override
  public Class<MultiLabelSpec> specType() {
    return MultiLabelSpec.class;
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.MultiLabel";
  }

  @Override
  public TaskSpec declared(Members m, @Nullable Object source) {
    return new MultiLabelSpec((int) m.number("labels"), pooling(m), m.string("output"), source);
  }

  @Override
  public Loss loss() {
    return Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
  }

  @Override
  public String displayName() {
    return "multi-label classification";
  }

  @Override
  public Labels labels() {
    return Labels.MULTI_HOT;
  }

  @Override
  public String describe(long outputs) {
    return "a " + outputs + "-label multi-label head";
  }

  @Override
  public String lossDescription() {
    return "mean binary cross-entropy";
  }

  @Override
  int headOutputs(TaskSpec task) {
    return ((MultiLabelSpec) task).numLabels();
  }

  @Override
  ClassificationSpec.Pooling pooling(TaskSpec task) {
    return ((MultiLabelSpec) task).pooling();
  }

  @Override
  public void check(TaskSpec task, GraftSpec graft, Graph host, List<Diagnostic> errors) {
    MultiLabelSpec m = (MultiLabelSpec) task;
    if (m.numLabels() < 1) {
      errors.add(Diagnostic.of(ErrorCode.TASK_SIZE_OUT_OF_RANGE, m.source(), "labels",
          "multi-label classification", "label", m.numLabels()));
    }
  }

  @Override
  String addLoss(Graph graph, TaskSpec task, String result, TensorType hostOutput) {
    return Losses.binaryCrossEntropyWithLogits(graph, result, addTargets(graph, task, hostOutput),
        hostOutput.elemType());
  }
}
