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
 * Mixture of LoRA experts and multi-head routing through the runtime on the real
 * all-MiniLM-L6-v2: a few training steps on one repeated batch lower the loss (the task loss plus
 * the load-balancing terms), the saved adapter holds the expected keys and shapes, and loading it
 * into a fresh model gives bit-identical predictions.
 */
class MixtureAdaptersTest {
  @Test
  void topKMixtureWithExpertsPerLayerTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.mixtureOfLora("", o -> o.expertsPerLayer(2, 2, 2, 4, 4, 8)
        .router("top_k").topK(2).rank(4)), 1e-2f, dir);
    assertEquals(12 * 3 + 2, saved.size(), "router, stacked A and B at 12 query/value sites, and the head");
    String base = "base_model.model.encoder.layer.5.attention.self.value.mixture_lora.";
    assertShape(saved, base + "router.weight", 8, 384);
    assertShape(saved, base + "lora_A.weight", 32, 384);
    assertShape(saved, base + "lora_B.weight", 384, 32);
    assertShape(saved, "base_model.model.encoder.layer.0.attention.self.query.mixture_lora.lora_A.weight", 8, 384);
  }

  @Test
  void softMixtureTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.mixtureOfLora("", o -> o.experts(3).rank(2).layers(4, 5)),
        1e-2f, dir);
    assertEquals(4 * 3 + 2, saved.size());
    assertShape(saved, "base_model.model.encoder.layer.4.attention.self.query.mixture_lora.router.weight", 3, 384);
  }

  @Test
  void multiHeadRoutingTrainsSavesAndLoads(@TempDir Path dir) {
    Map<String, TensorData> saved = trainSaveLoad(g -> g.multiHeadRouting("", o -> o.pieces(4).heads(4).rank(4)),
        1e-2f, dir);
    assertEquals(2 + 12 + 2, saved.size(), "the shared pieces, 12 routing logits and the head");
    assertShape(saved, "base_model.model.multi_head_routing.384x384.lora_A", 4, 4, 96, 4);
    assertShape(saved, "base_model.model.multi_head_routing.384x384.lora_B", 4, 4, 4, 96);
    assertShape(saved, "base_model.model.encoder.layer.2.attention.self.query.multi_head_routing.logits", 4, 4);
  }
}
