package dev.graft.compiler;

import dev.graft.testing.MiniLmHost;

import dev.graft.compiler.diag.GraftCompileException;
import dev.graft.compiler.passes.SavedActivations;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.SavedActivation;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** What the training step keeps from its forward pass for the backward pass, on all-MiniLM-L6-v2. */
class SavedActivationsTest {
  private static final String QV = ".*/attention/self/(query|value)/MatMul";

  private static long bytes(CompiledGraft g, long batch, long sequence) {
    return g.savedActivationBytes(Map.of("batch_size", batch, "sequence_length", sequence));
  }

  @Test
  void probeKeepsOnlyHeadValuesWhateverTheSequenceLength() {
    CompiledGraft probe = Graft.host(MiniLmHost.get()).classification(2).compile();
    List<SavedActivation> saved = probe.manifest().getSavedActivationsList();
    assertTrue(saved.stream().allMatch(a -> a.getName().startsWith("/head/") || a.getName().startsWith("/loss/")
        || a.getName().equals("logits")), "only head values: " + saved.stream().map(SavedActivation::getName).toList());
    // The pooled [batch, 384] float vector is what the weight gradient needs.
    assertTrue(bytes(probe, 1, 8) >= 384 * 4, "at least the pooled vector: " + bytes(probe, 1, 8));
    assertEquals(bytes(probe, 1, 8), bytes(probe, 1, 256), "nothing of the frozen host is kept");
    long scalars = probe.manifest().getSavedActivationsList().stream().filter(a -> a.getShapeCount() == 0).count();
    assertEquals(16 * (bytes(probe, 1, 8) - 4 * scalars) + 4 * scalars, bytes(probe, 16, 8),
        "linear in the batch (scalars aside)");
  }

  @Test
  void loraKeepsMoreForEveryAdaptedLayerAndNothingBeforeTheFirst() {
    CompiledGraft last = Graft.host(MiniLmHost.get()).lora(QV, l -> l.layers(List.of(5))).classification(2).compile();
    CompiledGraft all = Graft.host(MiniLmHost.get()).lora(QV).classification(2).compile();
    assertTrue(last.manifest().getSavedActivationsList().stream()
        .noneMatch(a -> a.getName().matches("/encoder/layer\\.[0-4]/.*|/embeddings/.*")
            && !a.getName().equals("/encoder/layer.4/output/LayerNorm/Add_1_output_0")),
        "with LoRA only in layer 5, layers 0..4 keep only their output, the adapters' input");
    // Values read by the backward pass only for their shape are not kept: shapes come from the inputs.
    assertTrue(last.manifest().getSavedActivationsList().stream()
        .noneMatch(a -> a.getName().equals("/head/masked_output_0")), "the masked sum's input is not kept");
    long lastBytes = bytes(last, 1, 64);
    long allBytes = bytes(all, 1, 64);
    assertTrue(allBytes > 4 * lastBytes, "6 adapted layers keep much more than 1: " + allBytes + " vs " + lastBytes);
    // Attention probabilities are [batch, 12, sequence, sequence]: the polynomial has a square term.
    String perExample = SavedActivations.perExample(all.manifest().getSavedActivationsList(), "batch_size");
    assertTrue(perExample.matches("\\d+·sequence_length\\^2 \\+ \\d+·sequence_length \\+ \\d+ bytes per example"),
        perExample);
    long at64 = bytes(all, 1, 64);
    long at128 = bytes(all, 1, 128);
    assertTrue(at128 > 2 * at64, "more than linear in the sequence: " + at64 + " -> " + at128);
    System.out.println("MiniLM LoRA q,v all layers: " + perExample + "; "
        + SavedActivations.describe(all.manifest().getSavedActivationsList(),
            Map.of("batch_size", 1L, "sequence_length", 64L)));
  }

  @Test
  void missingDimensionIsNamed() {
    CompiledGraft probe = Graft.host(MiniLmHost.get()).classification(2).compile();
    GraftCompileException e =
        assertThrows(GraftCompileException.class, () -> probe.savedActivationBytes(Map.of("sequence_length", 8L)));
    assertTrue(e.getMessage().startsWith("[GRAFT192] saved activation '"), e.getMessage());
    assertTrue(e.getMessage().contains("dimension 'batch_size' ("), e.getMessage());
    assertEquals(Set.of("batch_size"), SavedActivations.symbols(probe.manifest().getSavedActivationsList()));
  }
}
