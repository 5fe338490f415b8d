package dev.graft.dsl.continual;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.ArrayList;
import java.util.List;

/**
 * SEMA's growing classification head: each task adds its own block of rows (its classes, after every
 * earlier task's), trained with that task and frozen afterwards, as the reference's {@code fc}
 * grows per task ({@code inc_net.update_fc}) and, from the second task on, masks the earlier classes'
 * logits to −∞ while training ({@code _init_train}): the cross-entropy then reads only the task's
 * own logits, so training a head of the task's classes alone gives the same gradients. Over the
 * pooled embedding e of an example, block t gives {@code e·W_t + b_t}; all blocks side by side are
 * the class-incremental head.
 */
public final class TaskHead {
  /**
   * One task's rows.
   *
   * @param task the task's name
   * @param offset the index of its first class in the whole head
   * @param weight {@code [embedding][classes]} row-major, as the compiled head's {@code classifier.weight}
   * @param bias {@code [classes]}
   */
  public record Block(String task, int offset, int classes, float[] weight, float[] bias) {
    public Block {
      weight = weight.clone();
      bias = bias.clone();
      if (bias.length != classes || classes < 1 || weight.length % classes != 0) {
        throw new IllegalArgumentException("task '" + task + "' head block of " + classes + " classes has "
            + weight.length + " weights and " + bias.length + " biases");
      }
    }

    @Override
    public float[] weight() {
      return weight.clone();
    }

    @Override
    public float[] bias() {
      return bias.clone();
    }
  }

  private final List<Block> blocks = new ArrayList<>();

  /**
   * The classes of a new task whose training labels are {@code labels}: their largest plus one, at
   * least 2; a repeated name is GRAFT-R356, a task of one class or a negative label GRAFT-R355.
   */
  int classesOf(String task, long[] labels) {
    if (blocks.stream().anyMatch(b -> b.task().equals(task))) {
      throw new GraftException(RuntimeErrorCode.SEMA_TASK_NAME, "SEMA task '" + task + "' was already learned;"
          + " expected a new name, given one of " + tasks());
    }
    long max = -1;
    for (long l : labels) {
      if (l < 0) {
        throw new GraftException(RuntimeErrorCode.SEMA_TASK_LABELS, "SEMA task '" + task + "': labels are the task's"
            + " own classes 0, 1, …; given " + l);
      }
      max = Math.max(max, l);
    }
    if (max < 1) {
      throw new GraftException(RuntimeErrorCode.SEMA_TASK_LABELS, "SEMA task '" + task + "' has one class (label "
          + max + " only); expected at least 2 classes, labelled 0, 1, …");
    }
    return (int) max + 1;
  }

  /** Adds the rows of a task learned; returns its block. */
  Block add(String task, int classes, float[] weight, float[] bias) {
    Block b = new Block(task, classes(), classes, weight, bias);
    if (!blocks.isEmpty() && weight.length / classes != embedding()) {
      throw new IllegalArgumentException("task '" + task + "' head block reads " + weight.length / classes
          + " embedding values, the earlier ones " + embedding());
    }
    blocks.add(b);
    return b;
  }

  /** The block of {@code task}; GRAFT-R356 for a task not learned. */
  public Block block(String task) {
    return blocks.stream().filter(b -> b.task().equals(task)).findFirst().orElseThrow(() -> new GraftException(
        RuntimeErrorCode.SEMA_TASK_NAME, "no SEMA task '" + task + "'; expected one of " + tasks()));
  }

  /** Every task's block, in the order learned. */
  public List<Block> blocks() {
    return List.copyOf(blocks);
  }

  /** The tasks learned, in order. */
  public List<String> tasks() {
    return blocks.stream().map(Block::task).toList();
  }

  /** The classes of every task together. */
  public int classes() {
    return blocks.stream().mapToInt(Block::classes).sum();
  }

  private int embedding() {
    Block first = blocks.get(0);
    return first.weight.length / first.classes();
  }

  /** The logits {@code [rows][classes()]} of every block over pooled embeddings {@code [rows][embedding]}, in double. */
  public double[][] logits(float[][] embeddings) {
    double[][] out = new double[embeddings.length][classes()];
    for (int r = 0; r < embeddings.length; r++) {
      for (Block b : blocks) {
        int c = b.classes();
        int e = b.weight.length / c;
        if (embeddings[r].length != e) {
          throw new IllegalArgumentException("embedding row " + r + " has " + embeddings[r].length
              + " values, the head reads " + e);
        }
        for (int j = 0; j < c; j++) {
          double s = b.bias[j];
          for (int i = 0; i < e; i++) {
            s += (double) embeddings[r][i] * b.weight[i * c + j];
          }
          out[r][b.offset() + j] = s;
        }
      }
    }
    return out;
  }

  /**
   * Whether each row's prediction is its label: within {@code task}'s own classes ({@code taskAware},
   * labels the task's) or over every class (class-incremental, the label offset by the task's first
   * class). GRAFT-R355 for a label outside the task's classes.
   */
  boolean[] correct(String task, float[][] embeddings, long[] labels, boolean taskAware) {
    Block b = block(task);
    double[][] z = logits(embeddings);
    boolean[] out = new boolean[labels.length];
    for (int r = 0; r < labels.length; r++) {
      if (labels[r] < 0 || labels[r] >= b.classes()) {
        throw new GraftException(RuntimeErrorCode.SEMA_TASK_LABELS, "SEMA task '" + task + "' has classes 0.."
            + (b.classes() - 1) + "; example " + r + " is labelled " + labels[r]);
      }
      int from = taskAware ? b.offset() : 0;
      int to = taskAware ? b.offset() + b.classes() : z[r].length;
      int best = from;
      for (int j = from + 1; j < to; j++) {
        if (z[r][j] > z[r][best]) {
          best = j;
        }
      }
      out[r] = best == b.offset() + labels[r];
    }
    return out;
  }
}
