package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.CausalLmSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.dsl.Graft;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.Adapters;
import dev.graft.testing.TinyDecoderHost;
import dev.graft.testing.TinyGpt2Host;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The run-time checks of host inputs against the limits the compiler found in the host: ids
 * within the table they index (vocabulary 50 and 2 token types of the tiny BERT), the sequence
 * within its 16 positions. Each is refused before ONNX Runtime runs, naming the limit and the
 * value at fault, and a refused step changes nothing.
 */
class HostInputLimitsTest {
  private static final long[][] IDS = {{3, 7, 12, 8, 1}, {5, 9, 13, 0, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}};
  private static final long[] LABELS = {1, 0};
  private static CompiledGraft graft;
  private static Path hostFile;

  @TempDir static Path hostDir;

  @BeforeAll
  static void compile() throws Exception {
    hostFile = hostDir.resolve("tiny.onnx");
    Files.write(hostFile, TinyBertHost.host(3).model().toByteArray());
    graft = Graft.host(HostModel.read(hostFile)).adapter("lora", "", o -> {}).classification(2).compile();
  }

  private static AdapterModel open() {
    return AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7).withHost(hostFile));
  }

  private static Map<String, long[][]> inputs(long[][] ids, long[][] mask, long[][] types) {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", ids);
    m.put("attention_mask", mask);
    m.put("token_type_ids", types);
    return m;
  }

  private static Map<String, HostInput> byName(Manifest m) {
    return m.getInputsList().stream().collect(Collectors.toMap(HostInput::getName, Function.identity()));
  }

  @Test
  void theManifestHoldsTheLimitsOfTheTablesTheInputsIndex() {
    Map<String, HostInput> in = byName(graft.manifest());
    assertEquals(50, in.get("input_ids").getIndexLimit(), "word embeddings [50, 8]");
    assertEquals(2, in.get("token_type_ids").getIndexLimit(), "token type embeddings [2, 8]");
    assertEquals(0, in.get("attention_mask").getIndexLimit(), "the mask indexes no table");
    for (HostInput i : in.values()) {
      assertEquals(16, i.getMaxSequence(), i.getName() + ": position embeddings [16, 8] (a sliced position_ids buffer)");
    }
  }

  @Test
  void aDecoderWithPositionsFromRangeHasItsVocabularyAndPositions() {
    CompiledGraft lm = GraftCompiler.compile(new GraftSpec("Lm", "tiny", List.of(Adapters.lora(".*/attn/c_attn/MatMul", 2, 4)),
        new CausalLmSpec(TinyDecoderHost.LM_OUTPUT, -100, 0.0, null), AdamWSpec.DEFAULT, null),
        TinyDecoderHost.host(TinyGpt2Host.graph(5))).orThrow();
    Map<String, HostInput> in = byName(lm.manifest());
    assertEquals(TinyDecoderHost.VOCAB, in.get("input_ids").getIndexLimit());
    assertEquals(16, in.get("input_ids").getMaxSequence(), "wpe [16, 16] gathered at Range(0, sequence)");
    assertEquals(16, in.get("attention_mask").getMaxSequence());
  }

  @Test
  void idsOutsideTheVocabularyAreRefusedWithTheirPlace() {
    try (AdapterModel model = open()) {
      float[] before = model.getParameter(model.getParameters().get(0).getName());
      long[][] tooLarge = {{3, 7, 12, 8, 1}, {5, 9, 50, 0, 0}};
      GraftException e = assertThrows(GraftException.class,
          () -> model.trainStep(inputs(tooLarge, MASK, new long[2][5]), LABELS, 1e-3f));
      assertEquals(RuntimeErrorCode.INDEX_OUT_OF_RANGE, e.getErrorCode());
      assertTrue(e.getMessage().startsWith("[GRAFT-R090] host input 'input_ids' indexes a host table of 50 rows"),
          e.getMessage());
      assertTrue(e.getMessage().contains("values must be in [0, 50), got 50 at [1, 2]"), e.getMessage());
      long[][] negative = {{3, 7, 12, 8, 1}, {5, 9, 13, 0, -1}};
      GraftException n = assertThrows(GraftException.class,
          () -> model.predict(inputs(negative, MASK, new long[2][5])));
      assertEquals(RuntimeErrorCode.INDEX_OUT_OF_RANGE, n.getErrorCode());
      assertTrue(n.getMessage().contains("got -1 at [1, 4]"), "a negative id does not wrap: " + n.getMessage());
      long[][] types = {{0, 0, 0, 1, 1}, {0, 2, 0, 0, 0}};
      GraftException t = assertThrows(GraftException.class, () -> model.predict(inputs(IDS, MASK, types)));
      assertTrue(t.getMessage().contains("host input 'token_type_ids' indexes a host table of 2 rows: values must be"
          + " in [0, 2), got 2 at [1, 1]"), t.getMessage());
      assertEquals(0, model.getStep(), "no step was taken");
      assertArrayEquals(before, model.getParameter(model.getParameters().get(0).getName()));
      // The last id of the vocabulary is fine.
      long[][] last = {{3, 7, 12, 8, 49}, {5, 9, 13, 0, 0}};
      assertTrue(Float.isFinite(model.trainStep(inputs(last, MASK, new long[2][5]), LABELS, 1e-3f)));
    }
  }

  @Test
  void aSequenceLongerThanThePositionsIsRefused() {
    try (AdapterModel model = open()) {
      long[][] ids = new long[1][17];
      long[][] mask = new long[1][17];
      java.util.Arrays.fill(mask[0], 1);
      GraftException e = assertThrows(GraftException.class, () -> model.predict(inputs(ids, mask, new long[1][17])));
      assertEquals(RuntimeErrorCode.SEQUENCE_TOO_LONG, e.getErrorCode());
      assertTrue(e.getMessage().startsWith("[GRAFT-R091] host input 'input_ids' has sequence length 17; the host's"
          + " position table holds 16 positions, so at most 16 tokens fit"), e.getMessage());
      long[][] ids16 = new long[1][16];
      long[][] mask16 = new long[1][16];
      java.util.Arrays.fill(mask16[0], 1);
      assertEquals(1, model.predict(inputs(ids16, mask16, new long[1][16])).length, "16 tokens fit");
    }
  }
  /** A graft of {@code kind} with {@code tokens} virtual tokens on the tiny BERT (16 positions). */
  private static CompiledGraft virtual(String kind, int tokens) {
    return Graft.host(HostModel.read(hostFile)).adapter(kind, "", o -> o.set("tokens", tokens)).classification(2)
        .compile();
  }

  private static long[][] ones(int length) {
    long[][] m = new long[1][length];
    java.util.Arrays.fill(m[0], 1);
    return m;
  }

  @Test
  void promptTuningsVirtualTokensTakePositions() {
    CompiledGraft prompt = virtual("prompt_tuning", 4);
    HostInput ids = prompt.manifest().getInputs(0);
    assertEquals(12, ids.getMaxSequence());
    assertEquals(4, ids.getVirtualTokens());
    try (AdapterModel model = AdapterModel.open(Graft.graphs(prompt),
        ModelOptions.defaults().withSeed(7).withHost(hostFile))) {
      GraftException e = assertThrows(GraftException.class,
          () -> model.predict(inputs(new long[1][13], ones(13), new long[1][13])));
      assertEquals(RuntimeErrorCode.SEQUENCE_TOO_LONG, e.getErrorCode());
      assertEquals("[GRAFT-R091] host input 'input_ids' has sequence length 13; the host's position table holds 16"
          + " positions, 4 of them taken by the virtual tokens the graft puts first (prompt tuning), so at most 12"
          + " tokens fit (truncate the batch)", e.getMessage());
      // 12 tokens and the 4 virtual ones use the whole table.
      assertEquals(1, model.predict(inputs(new long[1][12], ones(12), new long[1][12])).length);
    }
  }

  @Test
  void prefixTuningsRowsTakeNoPosition() {
    // Prefix tuning adds key and value rows inside attention; the queries keep their positions.
    CompiledGraft prefix = virtual("prefix_tuning", 4);
    assertEquals(16, prefix.manifest().getInputs(0).getMaxSequence());
    assertEquals(0, prefix.manifest().getInputs(0).getVirtualTokens());
    try (AdapterModel model = AdapterModel.open(Graft.graphs(prefix),
        ModelOptions.defaults().withSeed(7).withHost(hostFile))) {
      assertEquals(1, model.predict(inputs(new long[1][16], ones(16), new long[1][16])).length, "16 tokens fit");
    }
  }

  @Test
  void virtualTokensThatFillThePositionTableAreACompileError() {
    var e = assertThrows(dev.graft.compiler.diag.GraftCompileException.class, () -> virtual("prompt_tuning", 16));
    assertEquals("[GRAFT210] the graft puts 16 virtual tokens (prompt tuning) before the caller's, but the host's"
        + " position table holds 16 positions, so no token of 'input_ids' would fit; use at most 15 virtual tokens",
        e.diagnostics().get(0).message());
    assertEquals(1, virtual("prompt_tuning", 15).manifest().getInputs(0).getMaxSequence(), "one token fits");
  }
}
