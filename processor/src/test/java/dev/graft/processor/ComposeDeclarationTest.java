package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * Named adapters, {@code @Compose} and {@code @Graft(train)} through javac on all-MiniLM-L6-v2:
 * the manifest records names, gates, what trains and the compositions; each error of GRAFT080–089
 * lands on the annotation value at fault.
 */
class ComposeDeclarationTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  /** Every layer's feed-forward output dense: where the bottleneck's default (pfeiffer) sites are. */
  private static final String FFN = ".*/layer.[0-9]+/output/dense/MatMul";

  private static JavaFileObject source(String graft, String... lines) {
    List<String> all = new ArrayList<>(List.of("package test;",
        "import dev.graft.annotations.*;",
        "@Graft(host = \"all-minilm-l6-v2.onnx\"" + graft + ")"));
    all.addAll(List.of(lines));
    all.add("@Classification(labels = 2)");
    all.add("interface Adapted {}");
    return JavaFileObjects.forSourceLines("test.Adapted", all);
  }

  @Test
  void namedAdaptersAndCompositionsCompile() throws IOException {
    Compilation c = JAVAC.compile(source(", train = {\"task\"}",
        "@Lora(name = \"task\", target = \"" + FFN + "\", rank = 4)",
        "@Bottleneck(name = \"lang\")",
        "@Lora(target = \".*/query/MatMul\")",
        "@Compose(\"stack(lang, task)\")"));
    assertThat(c).succeededWithoutWarnings();
    Manifest m = manifest(c, "Adapted");
    // Repeated @Lora annotations come together (javac's container), then @Bottleneck.
    assertEquals(List.of("task", "", "lang"), m.getAdaptersList().stream().map(a -> a.getName()).toList());
    assertEquals("gate.task", m.getAdapters(0).getGate());
    assertTrue(m.getAdapters(0).getTrained());
    assertFalse(m.getAdapters(2).getTrained());
    assertEquals("gate.lang", m.getAdapters(2).getGate());
    assertTrue(m.getAdapters(1).getTrained());
    assertEquals("stack(lang, task)", m.getCompositions(0).getExpression());
    assertEquals(6, m.getCompositions(0).getSitesCount());
    assertTrue(m.getParametersList().stream().anyMatch(p -> p.getName().equals("task.encoder.layer.5.output.dense.lora_B")
        && !p.getFrozen()));
    assertTrue(m.getParametersList().stream().filter(p -> p.getName().startsWith("lang.")).allMatch(p -> p.getFrozen()));
  }

  private static void assertError(String code, String line, JavaFileObject src) {
    Compilation c = JAVAC.compile(src);
    assertThat(c).failed();
    assertThat(c).hadErrorContaining("[" + code + "]").inFile(src).onLineContaining(line);
  }

  @Test
  void syntaxErrorIsGraft080() {
    assertError("GRAFT080", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@Compose(\"stack(a b)\")"));
  }

  @Test
  void syntaxErrorsGiveTheirColumnOnTheirOwnComposeAndTheOtherErrorsStillCome() {
    JavaFileObject src = source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@ParallelAdapter(name = \"c\")",
        "@Compose(\"stack(a, b\")", "@Compose(\"parallel(c, d)\")", "@Compose(\"chain(a, b)\")");
    Compilation c = JAVAC.compile(src);
    assertThat(c).failed();
    assertThat(c).hadErrorContaining("[GRAFT080] composition 'stack(a, b' is not valid at column 11: expected ',' or"
        + " ')', found the end").inFile(src).onLineContaining("@Compose(\"stack");
    assertThat(c).hadErrorContaining("[GRAFT080] composition 'chain(a, b)' is not valid at column 1: expected a block"
        + " (one of stack, parallel, average, fuse, split), found 'chain'").inFile(src).onLineContaining("chain(");
    assertThat(c).hadErrorContaining("[GRAFT081] composition parallel(c, d) names 'd'").inFile(src)
        .onLineContaining("@Compose(\"parallel");
  }

  @Test
  void theManifestRecordsTheCompositionPrintedCanonically() throws IOException {
    Compilation c = JAVAC.compile(source("", "@Lora(name = \"a\", target = \"" + FFN + "\", rank = 4)",
        "@Bottleneck(name = \"b\")", "@Compose(\" average( a:.25,b : 0.75) \")"));
    assertThat(c).succeededWithoutWarnings();
    assertEquals("average(a: 0.25, b: 0.75)", manifest(c, "Adapted").getCompositions(0).getExpression());
  }

  @Test
  void unknownNameIsGraft081() {
    assertError("GRAFT081", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@Compose(\"stack(a, c)\")"));
  }

  @Test
  void notComposableIsGraft082() {
    assertError("GRAFT082", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\", dora = true)",
        "@Bottleneck(name = \"b\")", "@Compose(\"stack(a, b)\")"));
  }

  @Test
  void badNestingIsGraft083() {
    assertError("GRAFT083", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@ParallelAdapter(name = \"c\")", "@Compose(\"parallel(a, fuse(b, c))\")"));
  }

  @Test
  void nameUsedTwiceIsGraft084() {
    assertError("GRAFT084", "@Compose(\"parallel", source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@Compose(\"stack(a, b)\")", "@Compose(\"parallel(a, b)\")"));
  }

  @Test
  void differentSitesIsGraft085() {
    assertError("GRAFT085", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\", layers = 0)",
        "@Bottleneck(name = \"b\")", "@Compose(\"stack(a, b)\")"));
  }

  @Test
  void badWeightsIsGraft086() {
    assertError("GRAFT086", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@Compose(\"split(a: 192, b: 100)\")"));
  }

  @Test
  void badNameIsGraft087() {
    assertError("GRAFT087", "name = \"Task-1\"", source("", "@Lora(name = \"Task-1\")"));
  }

  @Test
  void trainUnderFuseIsGraft088() {
    assertError("GRAFT088", "train = ", source(", train = {\"a\"}", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Bottleneck(name = \"b\")", "@Compose(\"fuse(a, b)\")"));
  }

  @Test
  void oneMemberIsGraft089() {
    assertError("GRAFT089", "@Compose", source("", "@Lora(name = \"a\", target = \"" + FFN + "\")",
        "@Compose(\"stack(a)\")"));
  }
}
