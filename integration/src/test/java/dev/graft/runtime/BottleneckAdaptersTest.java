package dev.graft.runtime;

import static dev.graft.runtime.MiniLmRoundTrip.assertShape;
import static dev.graft.runtime.MiniLmRoundTrip.trainSaveLoad;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.graft.runtime.io.TensorData;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bottleneck, parallel, Hydra, BitFit, LayerNorm and full tuning through the runtime on the real
 * all-MiniLM-L6-v2: a few training steps on one repeated batch lower the loss, the saved adapter
 * holds the expected keys and shapes, and loading it into a fresh model gives bit-identical
 * predictions. Host-tensor parameters start as the host's own values.
 */
class BottleneckAdaptersTest {
  @Test
  void bottleneckTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.bottleneck(), 1e-2f, dir);
    assertEquals(6 * 4 + 2, saved.size(), "4 tensors at each layer's feed-forward output, and the head");
    String base = "base_model.model.encoder.layer.3.output.dense.adapters.default.";
    assertShape(saved, base + "adapter_down.0.weight", 24, 384);
    assertShape(saved, base + "adapter_down.0.bias", 24);
    assertShape(saved, base + "adapter_up.weight", 384, 24);
    assertShape(saved, base + "adapter_up.bias", 384);
    assertShape(saved, "base_model.model.classifier.weight", 2, 384);
  }

  @Test
  void parallelAdapterAndHydraTrainSaveAndLoad(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(
        g -> g.parallelAdapter("", o -> o.layers(0, 1)).hydra("", o -> o.layers(4, 5).nonlinearity("tanh")),
        1e-2f, dir.resolve("both"));
    assertEquals(2 * 4 + 2 * 8 + 2, saved.size());
    assertShape(saved, "base_model.model.encoder.layer.1.output.adapters.default.adapter_down.0.weight", 192, 384);
    assertShape(saved, "base_model.model.encoder.layer.1.output.adapters.default.adapter_up.weight", 384, 192);
    assertShape(saved, "base_model.model.encoder.layer.5.output.hydra.default.parallel.adapter_down.0.weight", 24, 384);
    assertShape(saved, "base_model.model.encoder.layer.5.output.hydra.default.sequential.adapter_up.bias", 384);
  }

  @Test
  void hostTensorTuningStartsFromTheHostTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(
        g -> g.bitFit("", o -> o.layers(5)).layerNormTuning(".*embeddings.*", o -> {})
            .trainModules(".*/attention/self/query/MatMul", o -> o.layers(4)),
        1e-3f, dir);
    assertShape(saved, "base_model.model.encoder.layer.5.attention.self.query.bias", 384);
    assertShape(saved, "base_model.model.encoder.layer.5.output.LayerNorm.bias", 384);
    assertShape(saved, "base_model.model.embeddings.LayerNorm.weight", 384);
    assertShape(saved, "base_model.model.embeddings.LayerNorm.bias", 384);
    assertShape(saved, "base_model.model.encoder.layer.4.attention.self.query.weight", 384, 384);
    assertShape(saved, "base_model.model.encoder.layer.4.attention.self.query.bias", 384);
    assertEquals(8 + 2 + 2 + 2, saved.size(), "BitFit 6 linear + 2 LayerNorm biases, 2 embedding norms, query, head");
  }
}
