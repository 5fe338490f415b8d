package dev.graft.compiler.tasks;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.Task;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * The causal language-model loss: no head, the host's vocabulary logits {@code [batch, sequence,
 * vocab]} are the output (named {@code logits}); softmax cross-entropy of position t against token
 * t+1 of the int64 labels {@code [batch, sequence]} (shifted in the graph, the ignore index where
 * there is no next token or its {@code attention_mask} is 0).
 */
final class CausalLmTask extends TaskKind {
  /** The host input a causal LM reads. */
  static final String INPUT_IDS = "input_ids";

  @Override
  public Class<CausalLmSpec> specType() {
    return CausalLmSpec.class;
  }

  @Override
  public String annotation() {
    return "dev.graft.annotations.CausalLm";
  }

  @Override
  public TaskSpec declared(Members m, @Nullable Object source) {
    return new CausalLmSpec(m.string("output"), (long) m.number("ignoreIndex"), m.number("labelSmoothing"),
        source);
  }

  @Override
  public Loss loss() {
    return Loss.CAUSAL_LM_CROSS_ENTROPY;
  }

  @Override
  public String displayName() {
    return "causal language model";
  }

  @Override
  public Labels labels() {
    return Labels.NEXT_TOKENS;
  }

  @Override
  public String peftTaskType() {
    return "CAUSAL_LM";
  }

  @Override
  public boolean hasHead() {
    return false;
  }

  @Override
  public String describe(long outputs) {
    return "the causal language-model loss";
  }

  @Override
  public String lossDescription() {
    return "mean next-token cross-entropy";
  }

  @Override
  public void check(TaskSpec task, GraftSpec graft, Graph host, List<Diagnostic> errors) {
    CausalLmSpec lm = (CausalLmSpec) task;
    checkSmoothing(lm.labelSmoothing(), lm.source(), errors);
    TensorType ids = host.inputs().get(INPUT_IDS);
    if (ids == null || !ids.hasRank() || ids.rank() != 2
        || (ids.elemType() != TensorType.INT64 && ids.elemType() != TensorType.INT32)) {
      errors.add(Diagnostic.of(ErrorCode.LM_INPUT_IDS_MISSING, lm.source(), null, host.inputs()));
    }
    if (graft.adapters().isEmpty()) {
      errors.add(Diagnostic.of(ErrorCode.NOTHING_TO_TRAIN, graft.source(), null, graft.name(),
          "the causal LM loss"));
    }
  }

  static void checkSmoothing(double smoothing, @Nullable Object source, List<Diagnostic> errors) {
    if (!(smoothing >= 0 && smoothing < 1)) {
      errors.add(Diagnostic.of(ErrorCode.LABEL_SMOOTHING_OUT_OF_RANGE, source, "labelSmoothing", smoothing));
    }
  }

  @Override
  public @Nullable Diagnostic checkOutput(TaskSpec task, String output, @Nullable TensorType t) {
    boolean shaped = t != null && t.hasRank() && t.rank() == 3 && t.dim(2).isKnown() && t.isFloating();
    return shaped && t.dim(2).size() >= 2 ? null
        : Diagnostic.of(ErrorCode.LM_OUTPUT_SHAPE, task.source(), "output", output, t);
  }

  @Override
  public long outputs(TaskSpec task, long size) {
    return size;
  }

  @Override
  Head addHead(Graph graph, TaskSpec task, String output, long size, List<Parameter> parameters) {
    // The host's logits are the output (renamed to "logits" unless the host calls them that).
    return new Head(output.equals(LOGITS) ? output
        : graph.opTo(free(graph, LOGITS), "/lm/logits", "Identity", List.of(output)), null);
  }

  @Override
  String addLoss(Graph graph, TaskSpec task, String result, TensorType hostOutput) {
    CausalLmSpec lm = (CausalLmSpec) task;
    graph.addInput(labelsName(), new TensorType(TensorType.INT64, List.of(hostOutput.dim(0), hostOutput.dim(1))));
    return Losses.softmaxCrossEntropy(graph, result, 3, hostOutput.elemType(),
        Losses.nextTokens(graph, labelsName(), lm.ignoreIndex()), lm.ignoreIndex(), lm.labelSmoothing());
  }

  @Override
  public Task manifestTask(TaskSpec task, String hostOutput, long size) {
    CausalLmSpec lm = (CausalLmSpec) task;
    return super.manifestTask(task, hostOutput, size).toBuilder()
        .setIgnoreIndex(lm.ignoreIndex()).setLabelSmoothing(lm.labelSmoothing()).setLabelsInput(INPUT_IDS).build();
  }
}
