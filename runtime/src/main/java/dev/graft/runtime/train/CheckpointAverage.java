package dev.graft.runtime.train;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.export.ExportOptions;
import dev.graft.runtime.io.AtomicFiles;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.merge.AdapterDelta;
import dev.graft.runtime.merge.Merge;
import dev.graft.runtime.merge.MergeResult;
import dev.graft.runtime.state.Checkpoints;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.StringStringEntryProto;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Averages kept checkpoints ({@link KeptCheckpoints}) of one run with {@link MetricsWeighting}
 * weights, for an open model of their graft. Two spaces, labelled as such wherever results are shown:
 *
 * <ul>
 *   <li>{@link Space#PARAMETERS} ({@link #inParameters}): every parameter tensor is the weighted
 *       mean of the checkpoints' tensors, {@code θ = Σ w_i θ_i}: what checkpoint averaging usually
 *       means. The model then holds the average. For a factored adapter (LoRA's {@code A} and {@code
 *       B}) this is not the mean of the updates, since {@code (Σ w_i A_i)(Σ w_i B_i) ≠ Σ w_i A_i B_i}.
 *   <li>{@link Space#DELTA_W} ({@link #inDeltaW}): the merge registry's {@code linear} over each
 *       checkpoint's weight updates, {@code ΔW = Σ w_i A_i B_i} per linear site, exact (its rank can
 *       be up to the sum of the checkpoints' ranks), the head as the weighted mean of the heads.
 *       The result is a {@link MergeResult}, written as a merge's are (a PEFT folder after {@link
 *       MergeResult#toRank}, a merged ONNX); the model's parameters are left as they were.
 * </ul>
 *
 * Every checkpoint is read and checked against the model's graft (name, host, every parameter's
 * shape, dtype and finiteness) before the model changes; the model's step count and AdamW moments
 * are left as they were.
 */
public final class CheckpointAverage {
  /** The {@code adapter_config.json} entry of a merged result's provenance (informational: loads ignore it). */
  public static final String PROVENANCE_KEY = "graft_merge";

  /** Where the average is taken. */
  public enum Space {
    /** Each parameter tensor averaged. */
    PARAMETERS,
    /** Each linear site's weight update averaged (the merge registry's {@code linear}). */
    DELTA_W
  }

  private final List<KeptCheckpoints.Checkpoint> checkpoints;
  private final MetricsWeighting weighting;

  private CheckpointAverage(List<KeptCheckpoints.Checkpoint> checkpoints, MetricsWeighting weighting) {
    this.checkpoints = List.copyOf(checkpoints);
    this.weighting = Objects.requireNonNull(weighting, "weighting");
  }

  /** The average of {@code checkpoints} (e.g. {@code kept.last(5)}) with {@code weighting}. */
  public static CheckpointAverage of(List<KeptCheckpoints.Checkpoint> checkpoints, MetricsWeighting weighting) {
    if (checkpoints.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.CHECKPOINT_WEIGHTS, "no checkpoints to average");
    }
    return new CheckpointAverage(checkpoints, weighting);
  }

  /** The checkpoints' weights, in their order. */
  public double[] weights() {
    return weighting.weights(checkpoints);
  }

  /** Every checkpoint's parameters, each checked against {@code model}'s graft, before anything changes. */
  private List<Map<String, float[]>> read(AdapterModel model) {
    List<Map<String, float[]>> out = new ArrayList<>();
    for (KeptCheckpoints.Checkpoint c : checkpoints) {
      out.add(Checkpoints.readParameters(model.getManifest(), c.file()));
    }
    return out;
  }

  /** Sets the parameters of {@code model} to the weighted mean of the checkpoints' parameters; what was done. */
  public Averaged inParameters(AdapterModel model) {
    double[] w = weights();
    List<Map<String, float[]>> all = read(model);
    Map<String, float[]> averaged = new LinkedHashMap<>();
    for (Parameter p : model.getManifest().getParametersList()) {
      double[] acc = new double[all.get(0).get(p.getName()).length];
      for (int i = 0; i < all.size(); i++) {
        float[] v = all.get(i).get(p.getName());
        for (int j = 0; j < v.length; j++) {
          acc[j] += w[i] * v[j];
        }
      }
      float[] f = new float[acc.length];
      for (int j = 0; j < f.length; j++) {
        f[j] = (float) acc[j];
      }
      averaged.put(p.getName(), f);
    }
    averaged.forEach(model::setParameter);
    return new Averaged(checkpoints, w, weighting, Space.PARAMETERS);
  }

  /**
   * The weighted mean of the checkpoints' weight updates ({@code linear} of the merge registry,
   * one input per checkpoint named by its file); {@code model} computes each checkpoint's updates
   * and keeps its own parameters.
   */
  public DeltaAverage inDeltaW(AdapterModel model) {
    double[] w = weights();
    List<Map<String, float[]>> all = read(model);
    Map<String, float[]> before = model.getParameterValues();
    List<AdapterDelta> deltas = new ArrayList<>();
    try {
      for (int i = 0; i < all.size(); i++) {
        all.get(i).forEach(model::setParameter);
        deltas.add(model.delta(checkpoints.get(i).file().getFileName().toString()));
      }
    } finally {
      before.forEach(model::setParameter);
    }
    MergeResult merged = Merge.method("linear").add(deltas, w).run();
    return new DeltaAverage(merged, new Averaged(checkpoints, w, weighting, Space.DELTA_W));
  }

  /**
   * An average of weight updates.
   *
   * @param merge the merged updates and head (the registry's {@code linear})
   * @param averaged the checkpoints, weights and weighting
   */
  public record DeltaAverage(MergeResult merge, Averaged averaged) {
    /** {@link Averaged#provenance()} with the merge's own provenance as {@code merge}. */
    public JsonObject provenance() {
      JsonObject o = averaged.provenance();
      o.add("merge", merge.provenance());
      return o;
    }

    /** This average re-factored to rank {@code rank} by SVD ({@link MergeResult#toRank}). */
    public DeltaAverage toRank(int rank) {
      return new DeltaAverage(merge.toRank(rank), averaged);
    }

    /**
     * {@link MergeResult#savePeft}: a PEFT LoRA folder for {@code target}, its {@code
     * adapter_config.json}'s {@code graft_merge} this average's whole {@link #provenance()}.
     */
    public void savePeft(Path dir, Manifest target) {
      merge.savePeft(dir, target);
      JsonObject config = PeftAdapters.readConfig(dir);
      config.add(PROVENANCE_KEY, provenance());
      AtomicFiles.write(AtomicFiles.readable(dir).resolve(PeftAdapters.CONFIG_FILE), json(config));
    }

    /**
     * {@link MergeResult#exportMerged}: the exact merged ONNX model, its {@code metadata_props}
     * {@code graft_merge} this average's whole {@link #provenance()}.
     */
    public void exportMerged(AdapterModel model, Path dir, ExportOptions options) {
      merge.exportMerged(model, dir, options);
      Path file = dir.resolve(options.modelFile());
      ModelProto written;
      try {
        written = ModelProto.parseFrom(Files.readAllBytes(file));
      } catch (IOException e) {
        throw new GraftException(RuntimeErrorCode.IO, "cannot read back " + file + ": " + e, e);
      }
      ModelProto.Builder b = written.toBuilder().clearMetadataProps();
      for (StringStringEntryProto e : written.getMetadataPropsList()) {
        if (!e.getKey().equals(PROVENANCE_KEY)) {
          b.addMetadataProps(e);
        }
      }
      b.addMetadataProps(StringStringEntryProto.newBuilder().setKey(PROVENANCE_KEY).setValue(provenance().toString()));
      AtomicFiles.write(file, b.build().toByteArray());
    }
  }

  private static byte[] json(JsonObject o) {
    return (new GsonBuilder().setPrettyPrinting().disableHtmlEscaping().create().toJson(o) + "\n")
        .getBytes(StandardCharsets.UTF_8);
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
     * Saves {@code model}, which holds this parameter-space average, as an adapter folder ({@code
     * AdapterModel.saveAdapter}'s PEFT folder, replaced as a whole) whose {@code adapter_config.json}
     * carries the {@link #provenance()} as {@code graft_merge}.
     */
    public void saveAdapter(AdapterModel model, Path dir) {
      if (space != Space.PARAMETERS) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "an average of weight updates is saved through its"
            + " MergeResult (DeltaAverage.merge()), not as the model's parameters");
      }
      JsonObject config = JsonParser.parseString(PeftAdapters.adapterConfig(model.getManifest())).getAsJsonObject();
      config.add(PROVENANCE_KEY, provenance());
      PeftAdapters.save(dir, PeftAdapters.stateDict(model), new String(json(config), StandardCharsets.UTF_8));
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
