package dev.graft.runtime.train;

import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.state.Checkpoints;
import dev.graft.spec.manifest.Parameter;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Averages kept checkpoints ({@link KeptCheckpoints}) with {@link MetricsWeighting} weights into
 * an open model of the same graft. Two spaces, labelled as such wherever results are shown:
 *
 * <ul>
 *   <li>{@link Space#PARAMETERS}: every parameter tensor is the weighted mean of the
 *       checkpoints' tensors, {@code θ = Σ w_i θ_i} — what checkpoint averaging usually means. For
 *       a factored adapter (LoRA's {@code A}, {@code B}) this is not the mean of the updates: {@code
 *       (Σ w_i A_i)(Σ w_i B_i) ≠ Σ w_i A_i B_i}.
 * </ul>
 *
 * Every checkpoint is read and checked against the model's graft (name, host, every parameter's
 * shape, dtype and finiteness) before the model changes; the model's step count and AdamW moments
 * are left as they were.
 */
public final class CheckpointAverage {
  /** Where the average is taken. */
  public enum Space {
    /** Each parameter tensor averaged. */
    PARAMETERS
  }

  private final List<KeptCheckpoints.Checkpoint> checkpoints;
  private final MetricsWeighting weighting;
  private final Space space;

  private CheckpointAverage(List<KeptCheckpoints.Checkpoint> checkpoints, MetricsWeighting weighting, Space space) {
    this.checkpoints = List.copyOf(checkpoints);
    this.weighting = Objects.requireNonNull(weighting, "weighting");
    this.space = Objects.requireNonNull(space, "space");
  }

  /** The average of {@code checkpoints} (e.g. {@code kept.last(5)}) with {@code weighting}, in {@code space}. */
  public static CheckpointAverage of(List<KeptCheckpoints.Checkpoint> checkpoints, MetricsWeighting weighting,
      Space space) {
    if (checkpoints.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS, "no checkpoints to average");
    }
    return new CheckpointAverage(checkpoints, weighting, space);
  }

  /** The checkpoints' weights, in their order. */
  public double[] weights() {
    return weighting.weights(checkpoints);
  }

  /**
   * Sets the parameters of {@code model} to the average (after checking every checkpoint against
   * it) and returns what was done, with its provenance.
   */
  public Averaged applyTo(AdapterModel model) {
    double[] w = weights();
    List<Parameter> params = model.getManifest().getParametersList();
    Map<String, double[]> sum = new LinkedHashMap<>();
    for (int i = 0; i < checkpoints.size(); i++) {
      Map<String, float[]> values = Checkpoints.readParameters(model.getManifest(), checkpoints.get(i).file());
      for (Parameter p : params) {
        float[] v = values.get(p.getName());
        double[] acc = sum.computeIfAbsent(p.getName(), k -> new double[v.length]);
        for (int j = 0; j < v.length; j++) {
          acc[j] += w[i] * v[j];
        }
      }
    }
    Map<String, float[]> averaged = new LinkedHashMap<>();
    sum.forEach((name, acc) -> {
      float[] f = new float[acc.length];
      for (int j = 0; j < f.length; j++) {
        f[j] = (float) acc[j];
      }
      averaged.put(name, f);
    });
    averaged.forEach(model::setParameter);
    return new Averaged(checkpoints, w, weighting, space);
  }

  /**
   * An average that was taken.
   *
   * @param checkpoints the checkpoints averaged, oldest first
   * @param weights their weights (summing to 1)
   * @param weighting how they were weighted
   * @param space where the average was taken
   */
  public record Averaged(List<KeptCheckpoints.Checkpoint> checkpoints, double[] weights, MetricsWeighting weighting,
      Space space) {
    public Averaged {
      checkpoints = List.copyOf(checkpoints);
      weights = weights.clone();
    }

    @Override
    public double[] weights() {
      return weights.clone();
    }

    /**
     * The provenance a saved result carries in its config: the method ({@code
     * checkpoint-average}), the space, the weighting (metric, exponent, the formula) and every
     * input (file, step, training loss, metric, weight).
     */
    public JsonObject provenance() {
      JsonObject o = new JsonObject();
      o.addProperty("method", "checkpoint-average");
      o.addProperty("space", space == Space.PARAMETERS ? "parameters" : "delta_w");
      o.addProperty("weighting", "mwa-style");
      o.addProperty("formula", "w_i = m_i^p / sum_j m_j^p");
      o.addProperty("metric", switch (weighting.metric()) {
        case LOSS -> "1/train_loss";
        case STEP -> "step";
        case HELD_OUT -> "held_out";
      });
      o.addProperty("exponent", weighting.exponent());
      JsonArray inputs = new JsonArray();
      for (int i = 0; i < checkpoints.size(); i++) {
        KeptCheckpoints.Checkpoint c = checkpoints.get(i);
        JsonObject e = new JsonObject();
        e.addProperty("file", c.file().getFileName().toString());
        e.addProperty("step", c.step());
        e.addProperty("train_loss", c.trainLoss());
        if (c.metric() != null) {
          e.addProperty("metric", c.metric());
        }
        e.addProperty("weight", weights[i]);
        inputs.add(e);
      }
      o.add("inputs", inputs);
      return o;
    }
  }
}
