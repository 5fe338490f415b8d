package dev.graft.compiler.tasks;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.compiler.spec.TokenClassificationSpec;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.manifest.Task;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * Token classification: a linear head per token, {@code z = h · W + b} from {@code [batch,
 * sequence, hidden]} to {@code [batch, sequence, labels]} (W {@code [hidden, labels]} normal(0,
 * 0.02), saved transposed as Hugging Face's {@code BertForTokenClassification} head
 * {@code classifier}, b zero and not decayed), trained with softmax cross-entropy over the tokens
 * against int64 labels {@code [batch, sequence]}; a token whose label is the ignore index or whose
 * {@code attention_mask} is 0 contributes nothing.
 */
final class TokenClassificationTask extends TaskKind {
  @Override
  public Class<TokenClassificationSpec> specType() {
    return TokenClassificationSpec.class;
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.TokenClassification";
  }

  @Override
  public TaskSpec declared(Members m, @Nullable Object source) {
    return new TokenClassificationSpec((int) m.number("labels"), m.string("output"), (long) m.number("ignoreIndex"),
        source);
  }

  @Override
  public Loss loss() {
    return Loss.TOKEN_CROSS_ENTROPY;
  }

  @Override
  public String displayName() {
    return "token classification";
  }

  @Override
  public Labels labels() {
    return Labels.TOKEN_CLASSES;
  }

  @Override
  public String peftTaskType() {
    return "TOKEN_CLS";
  }

  @Override
  public boolean hasHead() {
    return true;
  }

  @Override
  public String describe(long outputs) {
    return "a " + outputs + "-class head per token";
  }

  @Override
  public String lossDescription() {
    return "mean cross-entropy over tokens";
  }

  @Override
  public void check(TaskSpec task, GraftSpec graft, Graph host, List<Diagnostic> errors) {
    TokenClassificationSpec t = (TokenClassificationSpec) task;
    if (t.numLabels() < 2) {
      errors.add(Diagnostic.of(ErrorCode.HEAD_LABELS_OUT_OF_RANGE, t.source(), "labels", t.numLabels()));
    } else if (t.ignoreIndex() >= 0 && t.ignoreIndex() < t.numLabels()) {
      errors.add(Diagnostic.of(ErrorCode.IGNORE_INDEX_IS_A_CLASS, t.source(), "ignoreIndex", t.ignoreIndex(),
          t.numLabels()));
    }
  }

  @Override
  public @Nullable Diagnostic checkOutput(TaskSpec task, String output, @Nullable TensorType t) {
    boolean shaped = t != null && t.hasRank() && t.rank() == 3 && t.dim(2).isKnown() && t.isFloating();
    return shaped ? null : Diagnostic.of(ErrorCode.HEAD_OUTPUT_SHAPE, task.source(), "output", output, t);
  }

  @Override
  public long outputs(TaskSpec task, long size) {
    return ((TokenClassificationSpec) task).numLabels();
  }

  @Override
  Head addHead(Graph graph, TaskSpec task, String output, long size, List<Parameter> params) {
    int elem = graph.typeOrThrow(output).elemType();
    int n = ((TokenClassificationSpec) task).numLabels();
    graph.addInput(PooledTask.WEIGHT, TensorType.of(elem, size, n));
    graph.addInput(PooledTask.BIAS, TensorType.of(elem, n));
    String z = graph.op("/classifier/MatMul", "MatMul", List.of(output, PooledTask.WEIGHT));
    String result = graph.opTo(free(graph, outputName()), "/classifier/Add", "Add", List.of(z, PooledTask.BIAS));
    params.add(Parameter.newBuilder().setName(PooledTask.WEIGHT).setSite("classifier").addShape(size).addShape(n)
        .setRole(ParameterRole.HEAD_WEIGHT).setInit(Init.NORMAL).setInitScale(0.02)
        .setSaveKey(PooledTask.HEAD_KEY + "weight").addSaveShape(n).addSaveShape(size).setSaveTransposed(true).build());
    params.add(Parameter.newBuilder().setName(PooledTask.BIAS).setSite("classifier").addShape(n)
        .setRole(ParameterRole.HEAD_BIAS).setInit(Init.ZEROS).setNoDecay(true)
        .setSaveKey(PooledTask.HEAD_KEY + "bias").addSaveShape(n).build());
    return new Head(result, null);
  }

  @Override
  String addLoss(Graph graph, TaskSpec task, String result, TensorType hostOutput) {
    TokenClassificationSpec t = (TokenClassificationSpec) task;
    graph.addInput(labelsName(), new TensorType(TensorType.INT64, List.of(hostOutput.dim(0), hostOutput.dim(1))));
    return Losses.softmaxCrossEntropy(graph, result, 3, hostOutput.elemType(),
        Losses.unmaskedTokens(graph, labelsName(), t.ignoreIndex()), t.ignoreIndex(), 0);
  }

  @Override
  public Task manifestTask(TaskSpec task, String hostOutput, long size) {
    return super.manifestTask(task, hostOutput, size).toBuilder()
        .setIgnoreIndex(((TokenClassificationSpec) task).ignoreIndex()).build();
  }

  @Override
  public Optional<ClassificationHead> manifestHead(TaskSpec task, String hostOutput, long size) {
    return Optional.of(ClassificationHead.newBuilder()
        .setNumLabels(((TokenClassificationSpec) task).numLabels())
        .setHostOutput(hostOutput)
        .setHiddenSize(size)
        .build());
  }
}
