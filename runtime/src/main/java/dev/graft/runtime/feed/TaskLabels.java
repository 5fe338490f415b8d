package dev.graft.runtime.feed;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.HostFeed;
import dev.graft.runtime.data.HostTensor;
import dev.graft.runtime.session.DirectBuffers;
import dev.graft.runtime.session.ElementType;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Task;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import org.jspecify.annotations.Nullable;

/**
 * The labels of a training step as the manifest's {@link Task} asks for them: class indices
 * {@code [batch]} (softmax cross-entropy), float targets {@code [batch, outputs]} (mean squared
 * error, binary cross-entropy), token ids {@code [batch, sequence]} (causal LM, by default the
 * task's labels input) or token classes {@code [batch, sequence]} (token classification). Every call that does not fit the task is refused, naming the one that does.
 */
public final class TaskLabels {
  private final Manifest manifest;
  private final Loss loss;
  private final @Nullable ElementType labelType;

  /** Makes the labels tensor of a batch of {@code batch} examples (the caller closes it). */
  @FunctionalInterface
  public interface Labels {
    OnnxTensor make(OrtEnvironment env, int batch) throws OrtException;
  }

  /**
   * The labels of {@code manifest}'s task; {@code labelType} is the training graph's labels input
   * type ({@code null} for inference only), checked against the loss.
   */
  public TaskLabels(Manifest manifest, @Nullable ElementType labelType, String source) {
    this.manifest = manifest;
    this.loss = lossOf(manifest);
    this.labelType = labelType;
    if (labelType != null) {
      boolean floats = loss == Loss.MEAN_SQUARED_ERROR || loss == Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
      if (floats ? labelType != ElementType.FLOAT : labelType != ElementType.INT64 && labelType != ElementType.INT32) {
        throw new TensorMismatchException(manifest.getTrain().getLabels(),
            (floats ? "float32" : "int64") + " labels for " + loss, String.valueOf(labelType), source);
      }
    }
  }

  /** The task's loss (softmax cross-entropy for manifests that predate tasks). */
  public Loss loss() {
    return loss;
  }

  private static Loss lossOf(Manifest m) {
    Loss l = m.hasTask() ? m.getTask().getLoss() : Loss.LOSS_UNSPECIFIED;
    return l == Loss.LOSS_UNSPECIFIED || l == Loss.UNRECOGNIZED ? Loss.SOFTMAX_CROSS_ENTROPY : l;
  }

  /** The ignore index of the labels, if the task has one (softmax cross-entropy of a task-aware manifest, causal LM). */
  private @Nullable Long ignoreIndex() {
    return manifest.hasTask() && (loss == Loss.SOFTMAX_CROSS_ENTROPY || loss == Loss.CAUSAL_LM_CROSS_ENTROPY
        || loss == Loss.TOKEN_CROSS_ENTROPY)
        ? manifest.getTask().getIgnoreIndex() : null;
  }

  /** Refuses {@code call} unless the task's loss is one of {@code accepted}, naming the call that fits. */
  private void require(String call, Loss... accepted) {
    for (Loss l : accepted) {
      if (l == loss) {
        return;
      }
    }
    String right = switch (loss) {
      case MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY_WITH_LOGITS -> "trainStep(hostInputs, float[][] targets, learningRate)";
      case CAUSAL_LM_CROSS_ENTROPY -> "trainStep(hostInputs, learningRate) or trainStep(hostInputs, long[][] labels, learningRate)";
      case TOKEN_CROSS_ENTROPY -> "trainStep(hostInputs, long[][] labels, learningRate)";
      default -> "trainStep(hostInputs, long[] labels, learningRate)";
    };
    throw new GraftException(
        RuntimeErrorCode.ARGUMENT, call + " does not fit this graft, whose loss is " + loss + "; call " + right);
  }

  /** Refuses a prediction of one row per example ({@code sequence} false) or per position that the task does not make. */
  public void requirePrediction(boolean sequence) {
    boolean lm = loss == Loss.CAUSAL_LM_CROSS_ENTROPY || loss == Loss.TOKEN_CROSS_ENTROPY;
    if (lm && !sequence) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, (loss == Loss.TOKEN_CROSS_ENTROPY
          ? "a token-classification graft predicts logits per token; call predictSequence(hostInputs) for "
              + "[batch][sequence][num_labels]"
          : "a causal LM predicts logits per position; call predictSequence(hostInputs) for [batch][sequence][vocab]"));
    }
    if (!lm && sequence) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "this graft's loss is " + loss + ": it predicts one row per example; call predict(hostInputs)");
    }
  }

  /** The labels a batch's task needs: class labels, float targets, or (causal LM) the labels input's tokens. */
  public Labels of(Batch batch) {
    return switch (loss) {
      case MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY_WITH_LOGITS -> {
        if (batch.targets() == null) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT,
              "this graft's loss is " + loss + ": its examples need float targets (Example.withTargets)");
        }
        yield targets(batch.targets());
      }
      case CAUSAL_LM_CROSS_ENTROPY -> tokens(batch.feed());
      case TOKEN_CROSS_ENTROPY -> throw new GraftException(RuntimeErrorCode.ARGUMENT,
          "this graft's loss is " + loss + ": its labels are one class per token, which a Batch does not hold; call "
              + "trainStep(hostInputs, long[][] labels, learningRate)");
      default -> classes(batch.labels());
    };
  }

  /** Class labels {@code [batch]}, each in {@code [0, num_labels)} or the ignore index. */
  public Labels classes(long[] labels) {
    require("trainStep(hostInputs, long[] labels, learningRate)", Loss.SOFTMAX_CROSS_ENTROPY);
    return (env, batch) -> {
      String name = manifest.getTrain().getLabels();
      if (labels.length != batch) {
        throw new TensorMismatchException(name, "[" + batch + "] (one label per example)", "[" + labels.length + "]");
      }
      int numLabels = manifest.getHead().getNumLabels();
      Long ignore = ignoreIndex();
      for (int i = 0; i < labels.length; i++) {
        boolean ignored = ignore != null && labels[i] == ignore;
        if (!ignored && (labels[i] < 0 || (numLabels > 0 && labels[i] >= numLabels))) {
          throw new TensorMismatchException(
              name, "labels in [0, " + numLabels + ")" + (ignore == null ? "" : " or the ignore index " + ignore),
              "labels[" + i + "] = " + labels[i]);
        }
      }
      if (labelType == ElementType.INT32) {
        IntBuffer b = DirectBuffers.ints(labels.length);
        for (long l : labels) {
          b.put((int) l);
        }
        return OnnxTensor.createTensor(env, b.clear(), new long[] {labels.length});
      }
      LongBuffer b = DirectBuffers.longs(labels.length);
      b.put(labels).clear();
      return OnnxTensor.createTensor(env, b, new long[] {labels.length});
    };
  }

  /** Float targets {@code [batch][outputs]} (regression: any finite values; multi-label: values in [0, 1]). */
  public Labels targets(float[][] targets) {
    require("trainStep(hostInputs, float[][] targets, learningRate)",
        Loss.MEAN_SQUARED_ERROR, Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS);
    return (env, batch) -> {
      String name = manifest.getTrain().getLabels();
      int n = manifest.getHead().getNumLabels();
      if (targets.length != batch) {
        throw new TensorMismatchException(name, "float32[" + batch + ", " + n + "]", "[" + targets.length + "][…]");
      }
      boolean binary = loss == Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS;
      FloatBuffer b = DirectBuffers.floats(batch * n);
      for (int i = 0; i < batch; i++) {
        if (targets[i].length != n) {
          throw new TensorMismatchException(
              name, "float32[" + batch + ", " + n + "]", "row " + i + " has " + targets[i].length + " values");
        }
        for (int j = 0; j < n; j++) {
          float v = targets[i][j];
          if (!Float.isFinite(v) || (binary && (v < 0 || v > 1))) {
            throw new TensorMismatchException(
                name, binary ? "targets in [0, 1]" : "finite targets", "targets[" + i + "][" + j + "] = " + v);
          }
          b.put(v);
        }
      }
      return OnnxTensor.createTensor(env, b.clear(), new long[] {batch, n});
    };
  }

  /** A causal LM's labels taken from the host input the task names ({@code input_ids}). */
  public Labels tokens(HostFeed hostInputs) {
    require("trainStep(hostInputs, learningRate)", Loss.CAUSAL_LM_CROSS_ENTROPY);
    String input = manifest.getTask().getLabelsInput();
    HostTensor ids = hostInputs.tensors().get(input);
    if (ids == null) {
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "the causal LM loss takes its labels from host input '"
          + input + "', which is missing; given " + hostInputs.names());
    }
    return tokens(hostInputs, ids.rows());
  }

  /**
   * Token labels {@code [batch, sequence]} (the shape of the host inputs): a causal LM's, each a
   * token id in {@code [0, vocab)} or the ignore index; a token classification's, each a class in
   * {@code [0, num_labels)} or the ignore index.
   */
  public Labels tokens(HostFeed hostInputs, long[][] labels) {
    require("trainStep(hostInputs, long[][] labels, learningRate)", Loss.CAUSAL_LM_CROSS_ENTROPY,
        Loss.TOKEN_CROSS_ENTROPY);
    String what = loss == Loss.TOKEN_CROSS_ENTROPY ? "classes" : "token ids";
    return (env, batch) -> {
      String name = manifest.getTrain().getLabels();
      HostTensor first = hostInputs.tensors().values().iterator().next();
      int seq = first.rank() < 2 ? 0 : Math.toIntExact(first.dim(1));
      long vocab = manifest.getTask().getNumOutputs();
      long ignore = manifest.getTask().getIgnoreIndex();
      if (labels.length != batch) {
        throw new TensorMismatchException(name, "[" + batch + ", " + seq + "] (as input_ids)", "[" + labels.length + ", …]");
      }
      LongBuffer b = DirectBuffers.longs(batch * seq);
      for (int i = 0; i < batch; i++) {
        if (labels[i].length != seq) {
          throw new TensorMismatchException(
              name, "[" + batch + ", " + seq + "] (as input_ids)", "row " + i + " has " + labels[i].length + " values");
        }
        for (int t = 0; t < seq; t++) {
          long v = labels[i][t];
          if (v != ignore && (v < 0 || (vocab > 0 && v >= vocab))) {
            throw new TensorMismatchException(
                name, what + " in [0, " + vocab + ") or the ignore index " + ignore, "labels[" + i + "][" + t + "] = " + v);
          }
        }
        b.put(labels[i]);
      }
      return OnnxTensor.createTensor(env, b.clear(), new long[] {batch, seq});
    };
  }
}
