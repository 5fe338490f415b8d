package dev.graft.compiler.tasks;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.MultiLabelSpec;
import dev.graft.compiler.spec.RegressionSpec;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.ArrayList;
import java.util.List;

/**
 * Task pass: adds what a task trains on top of the host and, in training graphs, its loss.
 *
 * <p>Pooled tasks (classification, regression, multi-label) pool a [batch, sequence, hidden]
 * host output (mask-aware mean over the tokens whose {@code attention_mask} is 1, or the first
 * token) and apply {@code z = pooled · W + b}. The causal LM task adds no head: the host's
 * vocabulary logits are the output. The loss is chosen by {@link #loss(TaskSpec)}:
 *
 * <ul>
 *   <li>softmax cross-entropy (classification, causal LM): {@code Σ_i w_i·ℓ_i / max(Σ_i w_i, 1)}
 *       with {@code ℓ_i = (1-ε)·(−log p_i[y_i]) + ε·mean_c(−log p_i[c])} and {@code w_i = 0} where
 *       the label is the ignore index, else 1 — for the causal LM i runs over positions and the
 *       label of position t is token t+1 (the last position and positions whose next token has
 *       {@code attention_mask} 0 get the ignore index);
 *   <li>mean squared error (regression): {@code mean((z − y)²)} over [batch, targets];
 *   <li>binary cross-entropy with logits (multi-label): {@code mean(max(z,0) − z·y +
 *       log(1 + exp(−|z|)))} over [batch, labels], with {@code max(z,0) = Relu(z)} and {@code |z| =
 *       Relu(z) + Relu(−z)}.
 * </ul>
 *
 * Guarantees: the graph's outputs become the task's output — named {@link #outputName(TaskSpec)},
 * or a fresh variant of it when the host already has a value of that name — and {@link #LOSS}
 * when training, with the labels input named {@link #labelsName(TaskSpec)}.
 */
public final class TaskPass {
  static final String LOGITS = "logits";
  static final String PREDICTIONS = "predictions";
  public static final String LOSS = "loss";
  public static final String LABELS = "labels";
  static final String TARGETS = "targets";
  static final String WEIGHT = "classifier.weight";
  static final String BIAS = "classifier.bias";
  static final String MASK_INPUT = "attention_mask";
  /** PEFT's key prefix of the head (a Hugging Face sequence-classification head, a module to save). */
  static final String HEAD_KEY = "base_model.model.classifier.";
  public static final String INPUT_IDS = "input_ids";

  private TaskPass() {}

  /** The loss a task trains with. */
  public static Loss loss(TaskSpec task) {
    if (task instanceof ClassificationSpec) {
      return Loss.SOFTMAX_CROSS_ENTROPY;
    } else if (task instanceof CausalLmSpec) {
      return Loss.CAUSAL_LM_CROSS_ENTROPY;
    } else if (task instanceof RegressionSpec) {
      return Loss.MEAN_SQUARED_ERROR;
    } else if (task instanceof MultiLabelSpec) {
      return Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
    }
    throw new IllegalArgumentException("unknown task " + task);
  }

  /** The inference output: {@code predictions} for regression, {@code logits} otherwise. */
  static String outputName(TaskSpec task) {
    return task instanceof RegressionSpec ? PREDICTIONS : LOGITS;
  }

  /** The training step's labels input: {@code targets} for regression, {@code labels} otherwise. */
  public static String labelsName(TaskSpec task) {
    return task instanceof RegressionSpec ? TARGETS : LABELS;
  }

  /** Outputs of a pooled head (classes, targets, labels); 0 for the causal LM (no head). */
  public static int headOutputs(TaskSpec task) {
    if (task instanceof ClassificationSpec c) {
      return c.numLabels();
    } else if (task instanceof RegressionSpec r) {
      return r.numTargets();
    } else if (task instanceof MultiLabelSpec m) {
      return m.numLabels();
    }
    return 0;
  }

  public static ClassificationSpec.Pooling pooling(TaskSpec task) {
    if (task instanceof ClassificationSpec c) {
      return c.pooling();
    } else if (task instanceof RegressionSpec r) {
      return r.pooling();
    } else if (task instanceof MultiLabelSpec m) {
      return m.pooling();
    }
    throw new IllegalArgumentException("task without a pooled head: " + task);
  }

  /**
   * Adds the task to {@code graph}.
   *
   * @param output the host output the task reads
   * @param size its last dimension (hidden size for pooled tasks, vocabulary size for the LM)
   * @return the head's parameters (none for the causal LM)
   */
  public static List<Parameter> add(Graph graph, TaskSpec task, String output, long size, boolean training) {
    return add(graph, task, output, size, training, List.of());
  }

  /**
   * {@link #add(Graph, TaskSpec, String, long, boolean)}, the training loss plus each auxiliary
   * loss times its weight; each auxiliary term is also a training graph output of its name.
   */
  public static List<Parameter> add(Graph graph, TaskSpec task, String output, long size, boolean training,
      List<Placement.AuxiliaryLoss> auxiliaryLosses) {
    TensorType outType = graph.typeOrThrow(output);
    int elem = outType.elemType();
    List<Parameter> params = new ArrayList<>();
    String result;
    if (task instanceof CausalLmSpec) {
      // The host's logits are the output (renamed to "logits" unless the host calls them that).
      result = output.equals(LOGITS) ? output : graph.opTo(free(graph, LOGITS), "/lm/logits", "Identity", List.of(output));
    } else {
      int n = headOutputs(task);
      String pooled = pool(graph, pooling(task), output, elem);
      graph.addInput(WEIGHT, TensorType.of(elem, size, n));
      graph.addInput(BIAS, TensorType.of(elem, n));
      String z = graph.op("/classifier/MatMul", "MatMul", List.of(pooled, WEIGHT));
      result = graph.opTo(free(graph, outputName(task)), "/classifier/Add", "Add", List.of(z, BIAS));
      params.add(Parameter.newBuilder().setName(WEIGHT).setSite("classifier").addShape(size).addShape(n)
          .setRole(ParameterRole.HEAD_WEIGHT).setInit(Init.NORMAL).setInitScale(0.02)
          .setSaveKey(HEAD_KEY + "weight").addSaveShape(n).addSaveShape(size).setSaveTransposed(true).build());
      params.add(Parameter.newBuilder().setName(BIAS).setSite("classifier").addShape(n)
          .setRole(ParameterRole.HEAD_BIAS).setInit(Init.ZEROS).setNoDecay(true)
          .setSaveKey(HEAD_KEY + "bias").addSaveShape(n).build());
    }
    graph.outputs().clear();
    graph.outputs().add(result);
    if (training) {
      Dim batch = outType.dim(0);
      String labels = labelsName(task);
      String loss;
      if (task instanceof ClassificationSpec c) {
        graph.addInput(labels, new TensorType(TensorType.INT64, List.of(batch)));
        loss = softmaxCrossEntropy(graph, result, 2, elem, labels, c.ignoreIndex(), c.labelSmoothing());
      } else if (task instanceof CausalLmSpec lm) {
        graph.addInput(labels, new TensorType(TensorType.INT64, List.of(batch, outType.dim(1))));
        loss = softmaxCrossEntropy(graph, result, 3, elem, nextTokens(graph, labels, lm.ignoreIndex()), lm.ignoreIndex(),
            lm.labelSmoothing());
      } else {
        graph.addInput(labels, TensorType.of(elem, List.of(batch, Dim.of(headOutputs(task)))));
        loss = task instanceof RegressionSpec
            ? meanSquaredError(graph, result, labels)
            : binaryCrossEntropyWithLogits(graph, result, labels, elem);
      }
      for (Placement.AuxiliaryLoss aux : auxiliaryLosses) {
        graph.outputs().add(graph.opTo(aux.name(), "/loss/" + aux.name(), "Identity", List.of(aux.value())));
        String weighted = graph.op("/loss/" + aux.name() + "/Mul", "Mul",
            List.of(aux.value(), graph.scalar("/loss/" + aux.name() + "/weight", elem, aux.weight())));
        loss = graph.op("/loss/" + aux.name() + "/Add", "Add", List.of(loss, weighted));
      }
      graph.opTo(LOSS, "/loss/out", "Identity", List.of(loss));
      graph.outputs().add(LOSS);
    }
    return params;
  }

  /** {@code name}, or a fresh variant of it when the host already has a value so named. */
  private static String free(Graph graph, String name) {
    String candidate = name;
    for (int i = 1; graph.type(candidate) != null || graph.producer(candidate) != null
        || graph.inputs().containsKey(candidate) || graph.initializers().containsKey(candidate); i++) {
      candidate = name + "_" + i;
    }
    return candidate;
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

  /**
   * The label of each position is the next token: {@code labels[:, 1:]} padded at the end with
   * the ignore index, and the ignore index where the next token's {@code attention_mask} is 0.
   * Integer ops only: nothing here is differentiated.
   */
  private static String nextTokens(Graph graph, String labels, long ignoreIndex) {
    String ignore = graph.constant("/loss/shift/ignore_index", Tensors.longs("ignore", List.of(), List.of(ignoreIndex)));
    String one = graph.longs("/loss/shift/one", List.of(1L));
    String end = graph.longs("/loss/shift/end", List.of(Long.MAX_VALUE));
    String pads = graph.longs("/loss/shift/pads", List.of(0L, 0L, 0L, 1L));
    String next = graph.op("/loss/shift/next", "Slice", List.of(labels, one, end, one));
    String shifted = graph.op("/loss/shift/labels", "Pad", List.of(next, pads, ignore));
    // Reshape to the labels' own shape: keeps [batch, sequence] known to shape inference (Pad
    // of a symbolic dimension is unknown), which the backward pass of the loss relies on.
    String labelsShape = graph.op("/loss/shift/shape", "Shape", List.of(labels));
    if (!graph.inputs().containsKey(MASK_INPUT)) {
      return graph.op("/loss/shift/reshaped", "Reshape", List.of(shifted, labelsShape));
    }
    String zero = graph.constant("/loss/shift/zero", Tensors.longs("zero", List.of(), List.of(0L)));
    String mask = graph.op("/loss/shift/mask", "Cast", List.of(MASK_INPUT), attr("to", (long) TensorType.INT64));
    String nextMask = graph.op("/loss/shift/next_mask", "Pad", List.of(
        graph.op("/loss/shift/mask_next", "Slice", List.of(mask, one, end, one)), pads, zero));
    String padding = graph.op("/loss/shift/padding", "Equal", List.of(nextMask, zero));
    String masked = graph.op("/loss/shift/masked", "Where", List.of(padding, ignore, shifted));
    return graph.op("/loss/shift/reshaped", "Reshape", List.of(masked, labelsShape));
  }

  /**
   * Softmax cross-entropy of logits {@code [..., classes]} against int64 labels {@code [...]}:
   * the mean over non-ignored labels of {@code (1-ε)·NLL + ε·mean_c(−log p)}; 0 when every label
   * is ignored.
   */
  private static String softmaxCrossEntropy(
      Graph graph, String logits, int rank, int elem, String labels, long ignoreIndex, double smoothing) {
    String ignore = graph.constant("/loss/ignore_index", Tensors.longs("ignore", List.of(), List.of(ignoreIndex)));
    String ignored = graph.op("/loss/ignored", "Equal", List.of(labels, ignore));
    String zero = graph.constant("/loss/zero_label", Tensors.longs("zero", List.of(), List.of(0L)));
    String safe = graph.op("/loss/safe_labels", "Where", List.of(ignored, zero, labels));
    String weight = graph.op("/loss/weight", "Cast", List.of(graph.op("/loss/counted", "Not", List.of(ignored))),
        attr("to", (long) elem));
    String lsm = graph.op("/loss/LogSoftmax", "LogSoftmax", List.of(logits), attr("axis", (long) (rank - 1)));
    String index = graph.op("/loss/labels", "Unsqueeze", List.of(safe, graph.longs("/loss/axis", List.of((long) (rank - 1)))));
    String picked = graph.op("/loss/picked", "GatherElements", List.of(lsm, index), attr("axis", (long) (rank - 1)));
    String logp = graph.op("/loss/log_p", "Squeeze", List.of(picked, graph.longs("/loss/squeeze_axis", List.of((long) (rank - 1)))));
    String perExample = graph.op("/loss/nll", "Neg", List.of(logp));
    if (smoothing > 0) {
      String meanLogp = graph.op("/loss/smooth/mean_log_p", "ReduceMean", List.of(lsm), attr("axes", List.of((long) (rank - 1))),
          attr("keepdims", 0L));
      String smooth = graph.op("/loss/smooth/uniform", "Neg", List.of(meanLogp));
      perExample = graph.op("/loss/smooth/sum", "Add", List.of(
          graph.op("/loss/smooth/nll", "Mul", List.of(perExample, graph.scalar("/loss/smooth/keep", elem, 1 - smoothing))),
          graph.op("/loss/smooth/spread", "Mul", List.of(smooth, graph.scalar("/loss/smooth/epsilon", elem, smoothing)))));
    }
    List<Long> all = new ArrayList<>();
    for (long a = 0; a < rank - 1; a++) {
      all.add(a);
    }
    String axes = graph.longs("/loss/all_axes", all);
    String total = graph.op("/loss/total", "ReduceSum", List.of(
        graph.op("/loss/weighted", "Mul", List.of(perExample, weight)), axes), attr("keepdims", 0L));
    String count = graph.op("/loss/count", "ReduceSum", List.of(weight, axes), attr("keepdims", 0L));
    String safeCount = graph.op("/loss/count_min", "Max", List.of(count, graph.scalar("/loss/one", elem, 1)));
    return graph.op("/loss/mean", "Div", List.of(total, safeCount));
  }

  /** {@code mean((z − y)²)} over every element. */
  private static String meanSquaredError(Graph graph, String predictions, String targets) {
    String d = graph.op("/loss/diff", "Sub", List.of(predictions, targets));
    String sq = graph.op("/loss/square", "Mul", List.of(d, d));
    return graph.op("/loss/mean", "ReduceMean", List.of(sq), attr("axes", List.of(0L, 1L)), attr("keepdims", 0L));
  }

  /** {@code mean(max(z,0) − z·y + log(1 + exp(−|z|)))} over every element, stable for any z. */
  private static String binaryCrossEntropyWithLogits(Graph graph, String z, String y, int elem) {
    String pos = graph.op("/loss/relu", "Relu", List.of(z));
    String neg = graph.op("/loss/relu_neg", "Relu", List.of(graph.op("/loss/neg", "Neg", List.of(z))));
    String abs = graph.op("/loss/abs", "Add", List.of(pos, neg));
    String softplus = graph.op("/loss/log1p_exp", "Log", List.of(graph.op("/loss/one_plus", "Add", List.of(
        graph.scalar("/loss/one", elem, 1), graph.op("/loss/exp", "Exp", List.of(graph.op("/loss/neg_abs", "Neg", List.of(abs))))))));
    String elementwise = graph.op("/loss/bce", "Add", List.of(
        graph.op("/loss/pos_minus_zy", "Sub", List.of(pos, graph.op("/loss/zy", "Mul", List.of(z, y)))), softplus));
    return graph.op("/loss/mean", "ReduceMean", List.of(elementwise), attr("axes", List.of(0L, 1L)), attr("keepdims", 0L));
  }
}
