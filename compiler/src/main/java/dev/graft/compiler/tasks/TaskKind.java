package dev.graft.compiler.tasks;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.ClassificationHead;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.Task;
import dev.graft.spec.manifest.GatheredTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.jspecify.annotations.Nullable;

/**
 * One kind of task: everything the compiler and the front-ends know about it, in one class —
 * the checks of its declaration, the head it adds on the host's output, its loss and labels
 * input, what the manifest records of it, and how the generated API types its labels. Adding a
 * task is a {@link TaskSpec} record, a subclass here and its line in {@link #all()}.
 *
 * <p>A task kind is stateless; its methods take the declaration's {@link TaskSpec}, of {@link
 * #specType()}.
 */
public abstract class TaskKind {
  static final String LOGITS = "logits";
  /** The training step's labels input of most tasks. */
  public static final String LABELS = "labels";
  /** The host input a mask-aware task reads (mean pooling, the causal LM's next-token labels, token classification). */
  public static final String MASK_INPUT = "attention_mask";

  private static final List<TaskKind> ALL = List.of(
      new ClassificationTask(), new RegressionTask(), new MultiLabelTask(), new CausalLmTask(),
      new TokenClassificationTask());

  /** What the training step's labels are, which decides how a front-end types them. */
  public enum Labels {
    /** One class index per example: int64 {@code [batch]}. */
    CLASS_INDEX,
    /** 0/1 (or soft) targets per label: {@code [batch, labels]} of the host's element type. */
    MULTI_HOT,
    /** Target values: {@code [batch, targets]} of the host's element type. */
    TARGET_VALUES,
    /** Token labels int64 {@code [batch, sequence]}, commonly the input ids; position t learns t+1. */
    NEXT_TOKENS,
    /** One class index per token: int64 {@code [batch, sequence]}, the ignore index where none. */
    TOKEN_CLASSES
  }

  /**
   * An annotation's member values (written or defaulted), as a front-end reads them. Each method
   * throws {@link IllegalArgumentException} when the member is missing or of another type.
   */
  public interface Members {
    double number(String member);

    String string(String member);

    /** The name of the enum constant the member holds. */
    String constant(String member);
  }

  TaskKind() {}

  /** Every task kind. */
  public static List<TaskKind> all() {
    return ALL;
  }

  /** The kind of a declared task. */
  public static TaskKind of(TaskSpec task) {
    for (TaskKind k : ALL) {
      if (k.specType().isInstance(task)) {
        return k;
      }
    }
    throw new IllegalArgumentException("no task kind for " + task);
  }

  /** The kind declared by the annotation of that qualified name. */
  public static Optional<TaskKind> byAnnotation(String qualifiedName) {
    return ALL.stream().filter(k -> k.annotation().equals(qualifiedName)).findFirst();
  }

  /** The kind that trains with {@code loss}, as a manifest records it. */
  public static Optional<TaskKind> of(Loss loss) {
    return ALL.stream().filter(k -> k.loss() == loss).findFirst();
  }

  /** The declaration record of this task. */
  public abstract Class<? extends TaskSpec> specType();

  /** The qualified name of the annotation that declares it, e.g. {@code dev.graft.annotations.Classification}. */
  public abstract String annotation();

  /**
   * The task an annotation of {@link #annotation()} declares.
   *
   * @param source where it was declared, for diagnostics only
   * @throws IllegalArgumentException when a member is missing or of another type
   */
  public abstract TaskSpec declared(Members members, @Nullable Object source);

  /** The loss it trains with, as the manifest records it. */
  public abstract Loss loss();

  /** The name messages use, e.g. {@code "classification"}. */
  public abstract String displayName();

  /** What the training step's labels are. */
  public abstract Labels labels();

  /** The training step's labels input. */
  public String labelsName() {
    return LABELS;
  }

  /** The inference output's preferred name (a fresh variant of it when the host has a value so named). */
  public String outputName() {
    return LOGITS;
  }

  /** PEFT's {@code task_type} of an {@code adapter_config.json}. */
  public abstract String peftTaskType();

  /** Whether it adds a head (parameters saved with the adapters as a module to save). */
  public abstract boolean hasHead();

  /** What it outputs per position, for {@code outputs} outputs: e.g. {@code "a 2-class head"}. */
  public abstract String describe(long outputs);

  /** Its loss in words, e.g. {@code "mean cross-entropy"}. */
  public abstract String lossDescription();

  /** The checks of the task's own settings (its host output is checked by {@link #checkOutput}). */
  public abstract void check(TaskSpec task, GraftSpec graft, Graph host, List<Diagnostic> errors);

  /**
   * The error of a host output the task cannot read, or null; {@code type} is its inferred type
   * (null when unknown). When null, the output's last dimension is the task's {@code size}.
   */
  public abstract @Nullable Diagnostic checkOutput(TaskSpec task, String output, @Nullable TensorType type);

  /** The number of outputs per position: classes, targets, labels, the vocabulary size. */
  public abstract long outputs(TaskSpec task, long size);

  /**
   * What a head added: the task's output value and, for a task whose head reads a pooled
   * representation ({@code [batch, hidden]}, the graft's embedding), that value; else null.
   */
  record Head(String output, @Nullable String pooled) {}

  /**
   * Adds the head on {@code output} (last dimension {@code size}) and returns the task's output
   * value (and the pooled value it reads, where it pools); the head's parameters are appended to
   * {@code parameters}.
   */
  abstract Head addHead(Graph graph, TaskSpec task, String output, long size, List<Parameter> parameters);

  /**
   * Adds the head of a gathered multi-adapter graph on {@code output}: each batch row uses the head
   * of its adapter, picked by {@code index} (int64 {@code [batch]}) from stacked head parameters,
   * which are appended to {@code stacked}; returns the task's output. A task without a head adds
   * its plain output. A task whose head has no gathered form says so.
   */
  String addGatheredHead(Graph graph, TaskSpec task, String output, long size, List<GatheredTensor> stacked) {
    if (hasHead()) {
      throw new IllegalStateException(displayName() + " has a head with no gathered form");
    }
    List<Parameter> none = new ArrayList<>();
    String result = addHead(graph, task, output, size, none).output();
    if (!none.isEmpty()) {
      throw new IllegalStateException(displayName() + " says it has no head but adds parameters " + none);
    }
    return result;
  }

  /**
   * Adds the labels input ({@link #labelsName()}) and the loss of {@code result} against them;
   * returns the loss value (a scalar of the host's element type).
   *
   * @param hostOutput the type of the host output the task reads
   */
  abstract String addLoss(Graph graph, TaskSpec task, String result, TensorType hostOutput);

  /** The manifest's Task message. */
  public Task manifestTask(TaskSpec task, String hostOutput, long size) {
    return Task.newBuilder()
        .setLoss(loss())
        .setHostOutput(hostOutput)
        .setNumOutputs(outputs(task, size))
        .build();
  }

  /** The manifest's head, where the task has one. */
  public Optional<ClassificationHead> manifestHead(TaskSpec task, String hostOutput, long size) {
    return Optional.empty();
  }

  /** {@code name}, or a fresh variant of it when the host already has a value so named. */
  static String free(Graph graph, String name) {
    String candidate = name;
    for (int i = 1; graph.type(candidate) != null || graph.producer(candidate) != null
        || graph.inputs().containsKey(candidate) || graph.initializers().containsKey(candidate); i++) {
      candidate = name + "_" + i;
    }
    return candidate;
  }
}
