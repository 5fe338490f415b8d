package dev.graft.compiler.tasks;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Task;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Classification: a pooled head to {@code numLabels} class logits, trained with softmax
 * cross-entropy (ignore index, label smoothing) against int64 class indices {@code [batch]}.
 */
final class ClassificationTask extends PooledTask {
  @Override
  public Class<ClassificationSpec> specType() {
    return ClassificationSpec.class;
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Classification";
  }

  @Override
  public TaskSpec declared(Members m, @Nullable Object source) {
    return new ClassificationSpec((int) m.number("labels"), pooling(m), m.string("output"),
        (long) m.number("ignoreIndex"), m.number("labelSmoothing"), source);
  }

  @Override
  public Loss loss() {
    return Loss.SOFTMAX_CROSS_ENTROPY;
  }

  @Override
  public String displayName() {
    return "classification";
  }

  @Override
  public Labels labels() {
    return Labels.CLASS_INDEX;
  }

  @Override
  public String describe(long outputs) {
    return "a " + outputs + "-class head";
  }

  @Override
  public String lossDescription() {
    return "mean cross-entropy";
  }

  @Override
  int headOutputs(TaskSpec task) {
    return ((ClassificationSpec) task).numLabels();
  }

  @Override
  ClassificationSpec.Pooling pooling(TaskSpec task) {
    return ((ClassificationSpec) task).pooling();
  }

  @Override
  public void check(TaskSpec task, GraftSpec graft, Graph host, List<Diagnostic> errors) {
    ClassificationSpec c = (ClassificationSpec) task;
    if (c.numLabels() < 2) {
      errors.add(Diagnostic.of(ErrorCode.HEAD_LABELS_OUT_OF_RANGE, c.source(), "labels", c.numLabels()));
    } else if (c.ignoreIndex() >= 0 && c.ignoreIndex() < c.numLabels()) {
      errors.add(Diagnostic.of(ErrorCode.IGNORE_INDEX_IS_A_CLASS, c.source(), "ignoreIndex", c.ignoreIndex(),
          c.numLabels()));
    }
    CausalLmTask.checkSmoothing(c.labelSmoothing(), c.source(), errors);
  }

  @Override
  String addLoss(Graph graph, TaskSpec task, String result, TensorType hostOutput) {
    ClassificationSpec c = (ClassificationSpec) task;
    graph.addInput(labelsName(), new TensorType(TensorType.INT64, List.of(hostOutput.dim(0))));
    return Losses.softmaxCrossEntropy(graph, result, 2, hostOutput.elemType(), labelsName(), c.ignoreIndex(),
        c.labelSmoothing());
  }

  @Override
  public Task manifestTask(TaskSpec task, String hostOutput, long size) {
    ClassificationSpec c = (ClassificationSpec) task;
    return super.manifestTask(task, hostOutput, size).toBuilder()
        .setIgnoreIndex(c.ignoreIndex()).setLabelSmoothing(c.labelSmoothing()).build();
  }
}
