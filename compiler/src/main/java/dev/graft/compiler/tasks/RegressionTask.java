package dev.graft.compiler.tasks;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.RegressionSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Loss;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Regression: a pooled head to {@code numTargets} values (output {@code predictions}), trained
 * with the mean squared error against float targets {@code [batch, numTargets]} (input {@code
 * targets}).
 */
final class RegressionTask extends PooledTask {
  static final String PREDICTIONS = "predictions";
  static final String TARGETS = "targets";

  @Override
  public Class<RegressionSpec> specType() {
    return RegressionSpec.class;
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.Regression";
  }

  @Override
  public TaskSpec declared(Members m, @Nullable Object source) {
    return new RegressionSpec((int) m.number("targets"), pooling(m), m.string("output"), source);
  }

  @Override
  public Loss loss() {
    return Loss.MEAN_SQUARED_ERROR;
  }

  @Override
  public String displayName() {
    return "regression";
  }

  @Override
  public Labels labels() {
    return Labels.TARGET_VALUES;
  }

  @Override
  public String labelsName() {
    return TARGETS;
  }

  @Override
  public String outputName() {
    return PREDICTIONS;
  }

  @Override
  public String describe(long outputs) {
    return "a " + outputs + "-target regression head";
  }

  @Override
  public String lossDescription() {
    return "mean squared error";
  }

  @Override
  int headOutputs(TaskSpec task) {
    return ((RegressionSpec) task).numTargets();
  }

  @Override
  ClassificationSpec.Pooling pooling(TaskSpec task) {
    return ((RegressionSpec) task).pooling();
  }

  @Override
  public void check(TaskSpec task, GraftSpec graft, Graph host, List<Diagnostic> errors) {
    RegressionSpec r = (RegressionSpec) task;
    if (r.numTargets() < 1) {
      errors.add(Diagnostic.of(ErrorCode.TASK_SIZE_OUT_OF_RANGE, r.source(), "targets", "regression", "target",
          r.numTargets()));
    }
  }

  @Override
  String addLoss(Graph graph, TaskSpec task, String result, TensorType hostOutput) {
    return Losses.meanSquaredError(graph, result, addTargets(graph, task, hostOutput));
  }
}
