package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.generatedClass;
import static dev.graft.testing.ProcessorCompiler.manifest;
import static dev.graft.testing.ProcessorCompiler.resource;
import static dev.graft.testing.ProcessorCompiler.source;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import javax.tools.DiagnosticCollector;
import javax.tools.JavaCompiler;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;
import javax.tools.JavaFileObject;
import javax.tools.StandardLocation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The processor end to end, through javac, on the real MiniLM host and tiny hand-made ones. */
class GraftProcessorTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  // ---------------------------------------------------------------- success

  @Test
  void validDeclarationWritesResourcesAndTypedClass() throws IOException {
    JavaFileObject src = source("SentimentLora",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.Lora;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@Lora(target = \".*/attention/self/(query|value)/MatMul\", rank = 8, alpha = 16)",
        "@Classification(labels = 2)",
        "interface SentimentLora {}");
    // No -Agraft.hostDir: the host comes from the class path, as in a user's build.
    Compilation compilation = ProcessorCompiler.onClassPath(GraftProcessor::new).compile(src);

    assertThat(compilation).succeededWithoutWarnings();
    assertThat(compilation).hadNoteContaining(
        "SentimentLora: the training step keeps 288·sequence_length^2 + ").inFile(src).onLineContaining("interface");
    assertGolden("golden/test/SentimentLoraGraft.java", generatedClass(compilation, "SentimentLora"));

    Manifest manifest = manifest(compilation, "SentimentLora");
    assertEquals("SentimentLora", manifest.getName());
    assertEquals(2, manifest.getHead().getNumLabels());
    assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"),
        manifest.getInputsList().stream().map(HostInput::getName).toList());
    assertEquals("lora", manifest.getAdapters(0).getKind());
    assertEquals("8", manifest.getAdapters(0).getOptionsOrThrow("rank"));
    assertTrue(manifest.getAdapterConfig().contains("\"target_modules\": [\n    \"query\",\n    \"value\"\n  ]"),
        manifest.getAdapterConfig());
    // 6 layers × (query, value) adapted: 12 A matrices, [hidden 384, rank 8] in graph layout (x·A).
    List<Parameter> loraA = manifest.getParametersList().stream()
        .filter(p -> p.getRole() == ParameterRole.LORA_A).toList();
    assertEquals(12, loraA.size());
    assertEquals(List.of(384L, 8L), loraA.get(0).getShapeList());
    for (String suffix : new String[] {".infer.onnx", ".train.onnx"}) {
      byte[] bytes = resource(compilation, "SentimentLora" + suffix);
      assertTrue(bytes.length < 1_000_000, suffix + " holds the host's weights: " + bytes.length + " bytes");
      ModelProto model = ModelProto.parseFrom(bytes);
      assertTrue(model.getGraph().getNodeCount() > 100, suffix + " has " + model.getGraph().getNodeCount() + " nodes");
    }
  }

  // ---------------------------------------------------------------- host lookup

  @Test
  void hostNotFound() {
    JavaFileObject src = source("Missing",
        "package test;",
        "@dev.graft.annotations.Graft(",
        "    host = \"missing.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Missing {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT001]").inFile(src).onLineContaining("host = \"missing.onnx\"");
    assertThat(compilation).hadErrorContaining("class path resource missing.onnx");
    assertThat(compilation).hadErrorContaining(TestHosts.dir().resolve("missing.onnx").toString());
    assertThat(compilation).hadErrorCount(1);
  }

  @Test
  void hostNotOnnx() {
    JavaFileObject src = source("NotOnnx",
        "package test;",
        "@dev.graft.annotations.Graft(",
        "    host = \"not-onnx.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface NotOnnx {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT002]").inFile(src).onLineContaining("host = \"not-onnx.onnx\"");
    assertThat(compilation).hadErrorCount(1);
  }

  @Test
  void hostOpsetUnsupported() {
    JavaFileObject src = source("Old",
        "package test;",
        "@dev.graft.annotations.Graft(",
        "    host = \"tiny-opset9.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, pooling = dev.graft.annotations.Classification.Pooling.FIRST_TOKEN)",
        "interface Old {}");
    assertThat(JAVAC.compile(src)).hadErrorContaining("[GRAFT003]").inFile(src).onLineContaining("host = \"tiny-opset9.onnx\"");
  }

  // ---------------------------------------------------------------- declaration shape

  @Test
  void graftOnAClass() {
    JavaFileObject src = source("NotAnInterface",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "abstract class NotAnInterface {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT004]")
        .inFile(src).onLineContaining("@dev.graft.annotations.Graft(");
    assertThat(compilation).hadErrorContaining("NotAnInterface is a class");
  }

  @Test
  void noTask() {
    JavaFileObject src = source("NoTask",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*MatMul\")",
        "interface NoTask {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT023]")
        .inFile(src).onLineContaining("@dev.graft.annotations.Graft(");
    assertThat(compilation).hadErrorContaining("add @Classification");
  }

  // ---------------------------------------------------------------- compiler diagnostics, on MiniLM

  @Test
  void loraValuesOutOfRange() {
    JavaFileObject src = source("BadLora",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/query/MatMul\",",
        "    rank = 0,",
        "    alpha = -1,",
        "    dropout = 1.5)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BadLora {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT012]").inFile(src).onLineContaining("rank = 0");
    assertThat(compilation).hadErrorContaining("[GRAFT013]").inFile(src).onLineContaining("alpha = -1");
    assertThat(compilation).hadErrorContaining("[GRAFT014]").inFile(src).onLineContaining("dropout = 1.5");
  }

  @Test
  void selectorInvalidAndMatchingNothingAndBadLayers() {
    JavaFileObject src = source("BadSelectors",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \"(unclosed\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/qeury/MatMul\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/value/MatMul\", layers = {1, 99})",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BadSelectors {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT010]").inFile(src).onLineContaining("(unclosed");
    assertThat(compilation).hadErrorContaining("[GRAFT011]").inFile(src).onLineContaining("qeury");
    assertThat(compilation).hadErrorContaining("/attention/self/query/MatMul");
    assertThat(compilation).hadErrorContaining("[GRAFT016]").inFile(src).onLineContaining("layers = {1, 99}");
    assertThat(compilation).hadErrorCount(3);
  }

  @Test
  void overlappingSelectors() {
    JavaFileObject src = source("Overlap",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/query/MatMul\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/(query|key)/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Overlap {}");
    assertThat(JAVAC.compile(src)).hadErrorContaining("[GRAFT015]").inFile(src).onLineContaining("(query|key)");
  }

  @Test
  void headAndOptimizerErrors() {
    JavaFileObject src = source("BadHead",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/query/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 1,",
        "    output = \"no_such_output\")",
        "@dev.graft.annotations.AdamW(beta1 = 1.5)",
        "interface BadHead {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT020]").inFile(src).onLineContaining("labels = 1");
    assertThat(compilation).hadErrorContaining("[GRAFT021]").inFile(src).onLineContaining("output = \"no_such_output\"");
    assertThat(compilation).hadErrorContaining("[GRAFT040]").inFile(src).onLineContaining("beta1 = 1.5");
  }

  // ---------------------------------------------------------------- compiler diagnostics, on tiny hosts

  @Test
  void headOutputNotRank3() {
    JavaFileObject src = source("FlatOutput",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-sin.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, output = \"z\",",
        "    pooling = dev.graft.annotations.Classification.Pooling.FIRST_TOKEN)",
        "interface FlatOutput {}");
    assertThat(JAVAC.compile(src)).hadErrorContaining("[GRAFT022]").inFile(src).onLineContaining("output = \"z\"");
  }

  @Test
  void opWithoutGradientRule() {
    JavaFileObject src = source("SoftplusHost",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-softplus.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface SoftplusHost {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT030]").inFile(src).onLineContaining("@dev.graft.annotations.Graft(");
    // Names the op, its domain, the opset, the node and the ops that have rules.
    assertThat(compilation).hadErrorContaining(
        "no gradient rule for op Softplus (domain '', opset 17) at node '/encoder/layer.0/act/Softplus'");
    assertThat(compilation).hadErrorContaining("ops with rules: [Abs, Add, ");
  }

  @Test
  void opWithoutGradientRuleAfterALoraSiteIsReportedAsSuchOnAnUnshapedOutput() {
    // Shape inference passes Elu through (elementwise, rank-preserving), so the missing rule is
    // what is reported, not the host output's unknown shape (GRAFT022).
    JavaFileObject src = source("EluHost",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-elu-unshaped.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface EluHost {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining(
        "[GRAFT030] no gradient rule for op Elu (domain '', opset 17) at node '/encoder/layer.0/act/Elu'")
        .inFile(src).onLineContaining("@dev.graft.annotations.Graft(");
    assertThat(compilation).hadErrorCount(1);
  }

  @Test
  void parametersThatCannotReachTheLossAreAnErrorOnTheTarget() {
    JavaFileObject src = source("SideBranch",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-branch.onnx\")",
        "@dev.graft.annotations.Lora(",
        "    target = \".*/side/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface SideBranch {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT190] LoRA parameter 'encoder.layer.0.side.lora_A' on"
        + " /encoder/layer.0/side/MatMul cannot reach the loss, so it would never train: the output of"
        + " /encoder/layer.0/side/MatMul does not flow into the task's host output 'y'")
        .inFile(src).onLineContaining("target = \".*/side/MatMul\"");
    assertThat(compilation).hadErrorContaining("[GRAFT190] LoRA parameter 'encoder.layer.0.side.lora_B'");
    // The same LoRA on the layer the output reads compiles: no Graft error (the generated class of
    // a host with float inputs does not compile yet, a gap of the writer's typed methods).
    JavaFileObject ok = source("MainBranch",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-branch.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface MainBranch {}");
    Compilation main = JAVAC.compile(ok);
    assertTrue(main.errors().stream().noneMatch(d -> d.getMessage(Locale.ROOT).contains("[GRAFT")), main.errors().toString());
    assertTrue(main.notes().stream().anyMatch(d -> d.getMessage(Locale.ROOT).contains("MainBranch: the training step keeps")),
        main.notes().toString());
  }

  @Test
  void hostAsFilePathAndLoraInExplicitContainer() {
    // The host named by an absolute path (found without -Agraft.hostDir's help); the @Lora
    // written inside an explicit @Lora.List, where javac's own positions apply.
    String path = TestHosts.dir().resolve(TestHosts.TINY_SIN).toAbsolutePath().toString().replace("\\", "/");
    JavaFileObject src = source("ByPath",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"" + path + "\")",
        "@dev.graft.annotations.Lora.List({",
        "    @dev.graft.annotations.Lora(target = \".*/dense/MatMul\",",
        "        rank = 0)})",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface ByPath {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT012]").inFile(src).onLineContaining("rank = 0");
    assertThat(compilation).hadErrorCount(1);
  }

  // ---------------------------------------------------------------- several declarations

  @Test
  void everyErrorOfEveryDeclarationIsReported(@TempDir Path out) throws IOException {
    JavaFileObject a = source("A",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/query/MatMul\", rank = 0)",
        "@dev.graft.annotations.Classification(labels = 1)",
        "interface A {}");
    JavaFileObject b = source("B",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"missing.onnx\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface B {}");
    JavaFileObject c = source("C",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/value/MatMul\", rank = 4)",
        "@dev.graft.annotations.Classification(labels = 3)",
        "interface C {}");
    Compilation compilation = JAVAC.compile(a, b, c);
    assertThat(compilation).hadErrorContaining("[GRAFT012]").inFile(a).onLineContaining("rank = 0");
    assertThat(compilation).hadErrorContaining("[GRAFT020]").inFile(a).onLineContaining("labels = 1");
    assertThat(compilation).hadErrorContaining("[GRAFT001]").inFile(b).onLineContaining("missing.onnx");
    assertThat(compilation).hadErrorCount(3);

    // compile-testing hides generated files of a failed compilation; javac writing to disk
    // shows them: the bad declarations write nothing, the good one beside them everything.
    JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
    try (StandardJavaFileManager files = javac.getStandardFileManager(null, Locale.ROOT, StandardCharsets.UTF_8)) {
      files.setLocationFromPaths(StandardLocation.CLASS_OUTPUT, List.of(out));
      files.setLocationFromPaths(StandardLocation.SOURCE_OUTPUT, List.of(out));
      JavaCompiler.CompilationTask task = javac.getTask(null, files, new DiagnosticCollector<>(),
          List.of("-proc:only", "-Agraft.hostDir=" + TestHosts.dir()), null, List.of(a, b, c));
      task.setProcessors(List.of(new GraftProcessor()));
      assertFalse(task.call());
    }
    assertTrue(Files.readString(out.resolve("test/CGraft.java")).contains("NUM_LABELS = 3;"));
    for (String f : new String[] {"C.infer.onnx", "C.train.onnx", "C.manifest.textproto"}) {
      assertTrue(Files.isRegularFile(out.resolve("test").resolve(f)), f);
    }
    try (Stream<Path> written = Files.walk(out)) {
      assertEquals(List.of(), written.map(p -> p.getFileName().toString())
          .filter(n -> n.startsWith("A") || n.startsWith("B")).toList());
    }
  }

  @Test
  void generatedClassCannotBeWritten() {
    JavaFileObject src = source("Clash",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/value/MatMul\", rank = 4)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Clash {}");
    // A hand-written class already owns the generated class's name: the Filer refuses to write it.
    JavaFileObject taken = source("ClashGraft", "package test;", "final class ClashGraft {}");
    Compilation compilation = JAVAC.compile(src, taken);
    assertThat(compilation).hadErrorContaining("[GRAFT050]").inFile(src).onLineContaining("@dev.graft.annotations.Graft");
    assertThat(compilation).hadErrorContaining("test.ClashGraft");
  }

  // ---------------------------------------------------------------- helpers

  /**
   * Compares with a golden file; on a difference, writes the actual text to {@code
   * target/golden-actual/} for review (copy it over the golden file when the change is meant).
   */
  private static void assertGolden(String resource, String actual) throws IOException {
    String expected = golden(resource);
    if (!expected.equals(actual)) {
      java.nio.file.Path out = java.nio.file.Path.of("target", "golden-actual", resource);
      java.nio.file.Files.createDirectories(out.getParent());
      java.nio.file.Files.writeString(out, actual, StandardCharsets.UTF_8);
    }
    assertEquals(expected, actual, "generated source differs from " + resource);
  }

  private static String golden(String resource) throws IOException {
    try (InputStream in = GraftProcessorTest.class.getClassLoader().getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalStateException("no golden file " + resource);
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

}
