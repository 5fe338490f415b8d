package dev.graft.spark;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import java.util.Arrays;
import java.util.Objects;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.jspecify.annotations.Nullable;

/**
 * The kinds of graft a scorer runs: a pooled head's logits per row, read as the task means them.
 * Which {@link ScoreOutput}s each offers, their Spark types, and their values.
 */
enum ScoreTask {
  CLASSIFICATION,
  MULTI_LABEL,
  REGRESSION;

  /** The task of a manifest; {@code GRAFT-R151} for a graft without a pooled head (causal LM, token classification). */
  static ScoreTask of(Manifest manifest) {
    Loss loss = manifest.hasTask() ? manifest.getTask().getLoss() : Loss.LOSS_UNSPECIFIED;
    return switch (loss) {
      case LOSS_UNSPECIFIED, SOFTMAX_CROSS_ENTROPY -> CLASSIFICATION;
      case BINARY_CROSS_ENTROPY_WITH_LOGITS -> MULTI_LABEL;
      case MEAN_SQUARED_ERROR -> REGRESSION;
      default -> throw new GraftException(RuntimeErrorCode.SCORING_OUTPUT, "graft '" + manifest.getName()
          + "' has the task loss " + loss + ", which has no pooled head to score rows with; the scorer runs"
          + " classification, multi-label and regression grafts");
    };
  }

  /** Checks that this task offers {@code output} ({@code GRAFT-R151} names what it offers). */
  void check(ScoreOutput output, Manifest manifest) {
    String graft = manifest.getName();
    if (output == ScoreOutput.EMBEDDING && manifest.getTask().getEmbeddingOutput().isEmpty()) {
      throw new GraftException(RuntimeErrorCode.SCORING_OUTPUT, "graft '" + graft + "' has no " + output
          + ": expected a manifest naming the inference graph's embedding output, given one that names none"
          + " (recompile the graft with this Graft)");
    }
    if (this == REGRESSION && output == ScoreOutput.PROBABILITIES) {
      throw new GraftException(RuntimeErrorCode.SCORING_OUTPUT, "graft '" + graft + "' is a regression graft;"
          + " it has no " + output + ". It offers " + ScoreOutput.PREDICTION + " and " + ScoreOutput.LOGITS);
    }
  }

  DataType type(ScoreOutput output) {
    DataType floats = DataTypes.createArrayType(DataTypes.FloatType, false);
    if (output != ScoreOutput.PREDICTION) {
      return floats;
    }
    return switch (this) {
      case CLASSIFICATION -> DataTypes.IntegerType;
      case MULTI_LABEL -> DataTypes.createArrayType(DataTypes.IntegerType, false);
      case REGRESSION -> floats;
    };
  }

  /**
   * The value of {@code output} for one row's logits or embedding (each null when not computed), as
   * a Spark row holds {@link #type} (primitive arrays).
   */
  Object value(ScoreOutput output, float @Nullable [] logits, float @Nullable [] embedding) {
    return switch (output) {
      case EMBEDDING -> Objects.requireNonNull(embedding, "embedding").clone();
      case LOGITS -> Objects.requireNonNull(logits, "logits").clone();
      case PROBABILITIES -> this == CLASSIFICATION ? softmax(Objects.requireNonNull(logits, "logits"))
          : sigmoid(Objects.requireNonNull(logits, "logits"));
      case PREDICTION -> prediction(Objects.requireNonNull(logits, "logits"));
    };
  }

  private Object prediction(float[] logits) {
    return switch (this) {
      case CLASSIFICATION -> argmax(logits);
      case MULTI_LABEL -> positives(logits);
      case REGRESSION -> logits.clone();
    };
  }

  /** The first index of the largest logit. */
  static int argmax(float[] logits) {
    int best = 0;
    for (int i = 1; i < logits.length; i++) {
      if (logits[i] > logits[best]) {
        best = i;
      }
    }
    return best;
  }

  /** Softmax, computed in double from the largest logit down (no overflow). */
  static float[] softmax(float[] logits) {
    double max = Double.NEGATIVE_INFINITY;
    for (float v : logits) {
      max = Math.max(max, v);
    }
    double sum = 0;
    double[] e = new double[logits.length];
    for (int i = 0; i < logits.length; i++) {
      e[i] = Math.exp(logits[i] - max);
      sum += e[i];
    }
    float[] p = new float[logits.length];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) (e[i] / sum);
    }
    return p;
  }

  static float[] sigmoid(float[] logits) {
    float[] p = new float[logits.length];
    for (int i = 0; i < p.length; i++) {
      p[i] = (float) (1 / (1 + Math.exp(-(double) logits[i])));
    }
    return p;
  }

  /** The labels whose sigmoid exceeds 0.5, i.e. whose logit is positive. */
  static int[] positives(float[] logits) {
    int n = 0;
    int[] labels = new int[logits.length];
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] > 0) {
        labels[n++] = i;
      }
    }
    return Arrays.copyOf(labels, n);
  }
}
