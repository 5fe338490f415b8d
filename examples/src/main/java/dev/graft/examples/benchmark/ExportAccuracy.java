package dev.graft.examples.benchmark;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The accuracy of an exported ONNX model as a user without Graft would measure it: a plain ONNX
 * Runtime session, batches of 64 examples (sorted by length), the argmax of its first output (the
 * logits) against the labels.
 */
final class ExportAccuracy implements AutoCloseable {
  private final Path model;
  private final OrtEnvironment env = OrtEnvironment.getEnvironment();
  private final OrtSession session;
  private final List<String> inputs;
  private final String logits;

  private ExportAccuracy(Path model) throws OrtException {
    this.model = model;
    try (OrtSession.SessionOptions so = new OrtSession.SessionOptions()) {
      this.session = env.createSession(model.toString(), so);
    }
    this.inputs = new ArrayList<>(session.getInputNames());
    this.logits = session.getOutputNames().iterator().next();
  }

  /** A session on the exported {@code model} (its {@code model.onnx}). */
  static ExportAccuracy open(Path model) {
    try {
      return new ExportAccuracy(model);
    } catch (OrtException e) {
      throw new IllegalStateException("opening " + model + ": " + e.getMessage(), e);
    }
  }

  /** The share of {@code examples} whose argmax of the logits is their label. */
  double of(List<Example> examples) {
    List<Example> sorted = new ArrayList<>(examples);
    sorted.sort(Comparator.comparingInt(Example::length));
    long correct = 0;
    for (int i = 0; i < sorted.size(); i += 64) {
      Batch batch = Batch.of(sorted.subList(i, Math.min(sorted.size(), i + 64)), inputs);
      Map<String, OnnxTensor> feeds = new HashMap<>();
      try {
        for (Map.Entry<String, long[][]> e : batch.inputs().entrySet()) {
          feeds.put(e.getKey(), OnnxTensor.createTensor(env, e.getValue()));
        }
        try (OrtSession.Result r = session.run(feeds, Set.of(logits))) {
          float[][] out = (float[][]) r.get(0).getValue();
          for (int row = 0; row < out.length; row++) {
            correct += argmax(out[row]) == batch.labels()[row] ? 1 : 0;
          }
        }
      } catch (OrtException e) {
        throw new IllegalStateException("scoring " + model + ": " + e.getMessage(), e);
      } finally {
        feeds.values().forEach(OnnxTensor::close);
      }
    }
    return (double) correct / sorted.size();
  }

  /** The index of the largest value, the first among equals. */
  private static int argmax(float[] v) {
    int best = 0;
    for (int i = 1; i < v.length; i++) {
      if (v[i] > v[best]) {
        best = i;
      }
    }
    return best;
  }

  @Override
  public void close() {
    try {
      session.close();
    } catch (OrtException e) {
      throw new IllegalStateException("closing " + model + ": " + e.getMessage(), e);
    }
  }
}
