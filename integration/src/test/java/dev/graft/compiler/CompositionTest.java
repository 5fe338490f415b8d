package dev.graft.compiler;

import dev.graft.testing.Adapters;
import dev.graft.testing.TinyBertHost;
import dev.graft.testing.WholeStepCheck;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.Composition;
import dev.graft.compiler.spec.CompositionParser;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Named adapters and composition blocks on the float64 tiny BERT: whole training steps of every
 * block against central differences (leaves of LoRA, bottleneck and parallel-adapter kinds), gates
 * off giving the host exactly, gates on giving the same function as the adapters placed
 * unnamed, the train list, and the errors GRAFT080–GRAFT089.
 */
class CompositionTest {
  private static final Graph HOST = TinyBertHost.graph(11, TensorType.DOUBLE);
  /** Both layers' feed-forward output dense (width 8): where every leaf below sits. */
  private static final String FFN_OUT = ".*/layer\\.\\d+/output/dense/MatMul";
  private static final ClassificationSpec TASK = new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null);

  private static AdapterSpec lora(String name) {
    return Adapters.lora(FFN_OUT, 2, 4).named(name);
  }

  private static AdapterSpec bottleneck(String name) {
    return Adapters.of("bottleneck", "", Map.of("reduction", 2, "nonlinearity", "tanh")).named(name);
  }

  private static AdapterSpec parallelAdapter(String name) {
    return Adapters.of("parallel", "", Map.of("reduction", 4, "nonlinearity", "tanh", "scaling", 2)).named(name);
  }

  private static GraftSpec spec(List<AdapterSpec> adapters, List<String> compositions, List<String> train) {
    return new GraftSpec("Tiny", "tiny", adapters, TASK, AdamWSpec.DEFAULT, null,
        compositions.stream().map(CompositionTest::parse).toList(), train);
  }

  /** A composition written in the syntax, as the processor reads {@code @Compose}. */
  private static Composition parse(String text) {
    try {
      return new Composition(CompositionParser.parse(text), null);
    } catch (CompositionParser.SyntaxError e) {
      throw new AssertionError(text, e);
    }
  }

  private static double check(GraftSpec spec) throws OrtException {
    try (WholeStepCheck c = WholeStepCheck.of(HOST, spec)) {
      double worst = c.assertGradientsMatch(1e-6, 1e-7, 1e-5);
      assertTrue(worst < 1e-7, "max error " + worst);
      System.out.printf("%s: max FD error %.3g%n", spec.compositions(), worst);
      return worst;
    }
  }

  @Test
  void stackWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a"), bottleneck("b")), List.of("stack(a, b)"), List.of()));
  }

  @Test
  void parallelWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a"), bottleneck("b"), parallelAdapter("c")), List.of("parallel(a, b, c)"), List.of()));
  }

  @Test
  void fixedAverageWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a"), bottleneck("b")), List.of("average(a: 0.25, b: 0.75)"), List.of()));
  }

  @Test
  void learnedAverageWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a"), bottleneck("b")), List.of("average(a, b)"), List.of()));
  }

  @Test
  void fuseWholeStepMatchesCentralDifferences() throws OrtException {
    GraftSpec spec = spec(List.of(lora("a"), bottleneck("b")), List.of("fuse(a, b)"), List.of());
    check(spec);
    try (WholeStepCheck c = WholeStepCheck.of(HOST, spec)) {
      // Only the fusion (and the head) trains: every parameter of a and b is frozen.
      for (Parameter p : c.params) {
        assertEquals(p.getName().startsWith("a.") || p.getName().startsWith("b."), p.getFrozen(), p.getName());
      }
      assertTrue(c.params.stream().anyMatch(p -> p.getName().contains("adapter_fusion_layer.fuse_a_b.value.weight")));
    }
  }

  @Test
  void splitWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a"), bottleneck("b")), List.of("split(a: 3, b: 5)"), List.of()));
  }

  @Test
  void nestedStackOfParallelWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a"), bottleneck("b"), parallelAdapter("c")), List.of("stack(a, parallel(b, c))"),
        List.of()));
  }

  @Test
  void namedAdapterAloneWholeStepMatchesCentralDifferences() throws OrtException {
    check(spec(List.of(lora("a")), List.of(), List.of()));
  }

  /** Every gate off: each block is the identity, so the logits are the host's with the same head. */
  @Test
  void gatesOffGiveTheHostExactly() throws OrtException {
    for (String block : List.of("stack(a, parallel(b, c))", "fuse(a, b, c)", "average(a, b, c)", "split(a: 2, stack(b, c): 6)")) {
      try (WholeStepCheck composed = WholeStepCheck.of(HOST,
              spec(List.of(lora("a"), bottleneck("b"), parallelAdapter("c")), List.of(block), List.of()));
          WholeStepCheck host = WholeStepCheck.of(HOST, spec(List.of(), List.of(), List.of()))) {
        for (String g : List.of("a", "b", "c")) {
          composed.gates.put("gate." + g, false);
        }
        host.values.put("classifier.weight", composed.values.get("classifier.weight"));
        host.values.put("classifier.bias", composed.values.get("classifier.bias"));
        double[] expected = host.inference();
        double[] off = composed.inference();
        assertArrayEquals(expected, off, 1e-12, block);
        composed.gates.clear();
        double[] on = composed.inference();
        assertTrue(Math.abs(on[0] - expected[0]) > 1e-6, block + ": the adapters change the logits when on");
      }
    }
  }

  /**
   * Gates on: stack(a, b) is the unnamed LoRA and bottleneck at the same layer (LoRA before the
   * bias, the bottleneck after it); a off leaves b alone.
   */
  @Test
  void gatesOnGiveTheComposedFunction() throws OrtException {
    try (WholeStepCheck composed = WholeStepCheck.of(HOST, spec(List.of(lora("a"), bottleneck("b")),
            List.of("stack(a, b)"), List.of()));
        WholeStepCheck both = WholeStepCheck.of(HOST, spec(List.of(Adapters.lora(FFN_OUT, 2, 4),
            Adapters.of("bottleneck", "", Map.of("reduction", 2, "nonlinearity", "tanh"))), List.of(), List.of()));
        WholeStepCheck onlyB = WholeStepCheck.of(HOST, spec(List.of(
            Adapters.of("bottleneck", "", Map.of("reduction", 2, "nonlinearity", "tanh"))), List.of(), List.of()))) {
      copyUnprefixed(composed, both);
      copyUnprefixed(composed, onlyB);
      assertArrayEquals(both.inference(), composed.inference(), 1e-12);
      composed.gates.put("gate.a", false);
      assertArrayEquals(onlyB.inference(), composed.inference(), 1e-12);
    }
  }

  /** Gives {@code into}'s parameters the values of {@code from}'s of the same name without the adapter-name prefix. */
  private static void copyUnprefixed(WholeStepCheck from, WholeStepCheck into) {
    Map<String, double[]> byName = new HashMap<>();
    from.values.forEach((k, v) -> byName.put(k.replaceFirst("^[ab]\\.", ""), v));
    into.values.replaceAll((k, v) -> {
      double[] given = byName.get(k);
      assertTrue(given != null, "no value for " + k + " among " + byName.keySet());
      return given;
    });
  }

  @Test
  void namedParametersAndManifest() {
    Manifest m = compile(spec(List.of(lora("task"), bottleneck("lang"), Adapters.lora(".*/query/MatMul", 2, 4)),
        List.of("stack(lang, task)"), List.of("task"))).manifest();
    assertTrue(m.getParametersList().stream().anyMatch(p -> p.getName().equals("task.encoder.layer.0.output.dense.lora_A")));
    assertTrue(m.getParametersList().stream().anyMatch(p -> p.getName().equals("encoder.layer.0.attention.self.query.lora_A")));
    Adapter task = m.getAdapters(0);
    Adapter lang = m.getAdapters(1);
    assertEquals("task", task.getName());
    assertEquals("gate.task", task.getGate());
    assertTrue(task.getTrained());
    assertFalse(lang.getTrained());
    assertTrue(m.getParametersList().stream().filter(p -> p.getName().startsWith("lang.")).allMatch(Parameter::getFrozen));
    assertTrue(m.getParametersList().stream().filter(p -> p.getName().startsWith("task.")).noneMatch(Parameter::getFrozen));
    assertEquals("", m.getAdapters(2).getName());
    assertTrue(m.getAdapters(2).getTrained());
    assertTrue(task.getConfig().contains("\"peft_type\": \"LORA\""), task.getConfig());
    assertEquals("stack(lang, task)", m.getCompositions(0).getExpression());
    assertEquals(List.of("encoder.layer.0.output.dense", "encoder.layer.1.output.dense"), m.getCompositions(0).getSitesList());
  }

  private static CompiledGraft compile(GraftSpec spec) {
    return GraftCompiler.compile(spec, HostModel.of("tiny", OnnxExport.write(HOST, "tiny"))).orThrow();
  }

  private static List<Diagnostic> errors(GraftSpec spec) {
    CompileResult r = GraftCompiler.compile(spec, HostModel.of("tiny", OnnxExport.write(HOST, "tiny")));
    assertFalse(r.ok(), "expected errors");
    return r.diagnostics();
  }

  private static void assertError(ErrorCode code, String fragment, GraftSpec spec) {
    List<Diagnostic> errors = errors(spec);
    assertTrue(errors.stream().anyMatch(d -> d.code() == code && d.message().contains(fragment)),
        "expected " + code.code() + " containing '" + fragment + "', got " + errors);
  }

  @Test
  void builderWritesTheSyntaxAndCompiles() {
    assertEquals("stack(lang, fuse(a, b))", dev.graft.dsl.Graft.stack(dev.graft.dsl.Graft.ref("lang"),
        dev.graft.dsl.Graft.fuse("a", "b")).toString());
    assertEquals("average(a: 0.25, b: 0.75)", dev.graft.dsl.Graft.average(dev.graft.dsl.Graft.weighted("a", 0.25),
        dev.graft.dsl.Graft.weighted("b", 0.75)).toString());
    assertEquals("split(a: 3, b: 5)", dev.graft.dsl.Graft.split(dev.graft.dsl.Graft.weighted("a", 3),
        dev.graft.dsl.Graft.weighted("b", 5)).toString());
    CompiledGraft graft = dev.graft.dsl.Graft.host(HostModel.of("tiny", OnnxExport.write(HOST, "tiny")))
        .lora(FFN_OUT, o -> o.name("a").rank(2))
        .bottleneck("", o -> o.name("b").reduction(2))
        .compose(dev.graft.dsl.Graft.parallel("a", "b"))
        .train("b")
        .classification(2)
        .compile();
    Manifest m = graft.manifest();
    assertEquals("parallel(a, b)", m.getCompositions(0).getExpression());
    assertFalse(m.getAdapters(0).getTrained());
    assertTrue(m.getAdapters(1).getTrained());
    assertEquals("gate.b", m.getAdapters(1).getGate());
  }

  @Test
  void errors() {
    List<AdapterSpec> ab = List.of(lora("a"), bottleneck("b"));
    // The syntax errors of a text are the processor's (CompositionParserTest, ComposeDeclarationTest);
    // a tree can still lack a block at its root.
    assertError(ErrorCode.COMPOSITION_SYNTAX, "composition 'a' is not valid at column 1: expected a block (one of"
        + " stack, parallel, average, fuse, split), found 'a'", new GraftSpec("Tiny", "tiny", ab, TASK,
        AdamWSpec.DEFAULT, null, List.of(Composition.of(dev.graft.dsl.Graft.ref("a"))), List.of()));
    assertError(ErrorCode.COMPOSITION_UNKNOWN_ADAPTER, "names 'c'", spec(ab, List.of("stack(a, c)"), List.of()));
    assertError(ErrorCode.COMPOSITION_NOT_COMPOSABLE, "'p' is prefix tuning, which does not act", spec(List.of(lora("a"),
        Adapters.of("prefix_tuning", "", Map.of("tokens", 2)).named("p")), List.of("stack(a, p)"), List.of()));
    assertError(ErrorCode.COMPOSITION_NESTING, "fuse may hold adapter names only, but it holds stack(a, b)",
        spec(List.of(lora("a"), bottleneck("b"), parallelAdapter("c")), List.of("fuse(stack(a, b), c)"), List.of()));
    assertError(ErrorCode.COMPOSITION_NESTING, "at most two deep", spec(List.of(lora("a"), bottleneck("b"),
        parallelAdapter("c"), bottleneck("d")), List.of("stack(a, stack(b, stack(c, d)))"), List.of()));
    assertError(ErrorCode.COMPOSITION_NAME_REUSED, "'a' appears 2 times",
        spec(ab, List.of("stack(a, b)", "parallel(a, b)"), List.of()));
    assertError(ErrorCode.COMPOSITION_SITES_DIFFER, "'a' is on", spec(List.of(
        Adapters.lora(".*/layer\\.0/output/dense/MatMul", 2, 4).named("a"), bottleneck("b")), List.of("stack(a, b)"), List.of()));
    assertError(ErrorCode.COMPOSITION_WEIGHTS_INVALID, "summing to 0.9",
        spec(ab, List.of("average(a: 0.5, b: 0.4)"), List.of()));
    assertError(ErrorCode.COMPOSITION_WEIGHTS_INVALID, "split widths must sum to the width of the value they cut, 8",
        spec(ab, List.of("split(a: 4, b: 5)"), List.of()));
    assertError(ErrorCode.COMPOSITION_WEIGHTS_INVALID, "stack takes no weights", spec(ab, List.of("stack(a: 1, b)"), List.of()));
    assertError(ErrorCode.ADAPTER_NAME_INVALID, "'Task' must match", spec(List.of(lora("Task")), List.of(), List.of()));
    assertError(ErrorCode.ADAPTER_NAME_INVALID, "'a' is given to two", spec(List.of(lora("a"), bottleneck("a")),
        List.of(), List.of()));
    assertError(ErrorCode.TRAIN_NAME_INVALID, "train lists 'x', but no adapter", spec(ab, List.of("stack(a, b)"), List.of("x")));
    assertError(ErrorCode.TRAIN_NAME_INVALID, "under a fuse block", spec(ab, List.of("fuse(a, b)"), List.of("a")));
    assertError(ErrorCode.COMPOSITION_TOO_FEW, "stack(a) needs at least 2 members, got 1",
        spec(ab, List.of("stack(a)"), List.of()));
    // Named composable adapters on the same sites and in no block overlap, as unnamed ones do.
    assertError(ErrorCode.SITES_OVERLAP, "compose them", spec(List.of(lora("a"), Adapters.lora(FFN_OUT, 2, 4).named("b")),
        List.of(), List.of()));
  }
}
