package dev.graft.runtime;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A copy of an adapter model's whole training state (every parameter, both AdamW moments, the
 * step count), for tests that check an operation changed nothing (the fuzz targets' oracle for
 * refused loads).
 */
public final class TrainingStateSnapshot {
  private final Map<String, float[]> tensors;
  private final long step;

  private TrainingStateSnapshot(Map<String, float[]> tensors, long step) {
    this.tensors = tensors;
    this.step = step;
  }

  public static TrainingStateSnapshot of(AdapterModel model) {
    Map<String, float[]> tensors = new LinkedHashMap<>(model.getParameterValues());
    if (model.isTrainable()) {
      for (String name : model.getParameterValues().keySet()) {
        tensors.put(name + "/m", model.optimizerState(name, false));
        tensors.put(name + "/v", model.optimizerState(name, true));
      }
    }
    return new TrainingStateSnapshot(tensors, model.getStep());
  }

  /** The names of the tensors that differ from {@code other}'s (bit for bit), and "step" if the step does. */
  public String differences(TrainingStateSnapshot other) {
    StringBuilder out = new StringBuilder();
    if (step != other.step) {
      out.append("step ").append(step).append(" → ").append(other.step).append(' ');
    }
    for (Map.Entry<String, float[]> e : tensors.entrySet()) {
      float[] o = other.tensors.get(e.getKey());
      if (o == null || !Arrays.equals(e.getValue(), o)) {
        out.append(e.getKey()).append(' ');
      }
    }
    if (!tensors.keySet().equals(other.tensors.keySet())) {
      out.append("(tensor names) ");
    }
    return out.toString().strip();
  }
}
