package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * {@code @MixtureOfLora} and {@code @MultiHeadRouting} through javac on all-MiniLM-L6-v2: the
 * manifest records the options (the {@code int[]} expertsPerLayer as a list), the sites, the
 * per-layer expert counts, the shared pieces and the load-balancing losses; each error code lands
 * on the annotation value at fault.
 */
class MixtureDeclarationTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  private static List<Long> shape(Manifest m, String name) {
    return m.getParametersList().stream().filter(p -> p.getName().equals(name)).findFirst()
        .orElseThrow(() -> new AssertionError("no parameter " + name)).getShapeList();
  }

  @Test
  void mixtureOfLoraCompilesWithExpertsPerLayer() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Mixed",
        "package test;",
        "import dev.graft.annotations.MixtureOfLora;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@MixtureOfLora(target = \".*/query/MatMul\", expertsPerLayer = {2, 2, 2, 4, 4, 8}, rank = 4,",
        "    router = MixtureOfLora.Router.TOP_K, topK = 2, auxLossWeight = 0.05)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Mixed {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).succeededWithoutWarnings();
    Manifest m = manifest(c, "Mixed");
    Adapter a = m.getAdapters(0);
    assertEquals("mixture_lora", a.getKind());
    assertEquals(Map.of("rank", "4", "alpha", "16", "dropout", "0", "experts", "4", "expertsPerLayer", "2,2,2,4,4,8",
        "router", "top_k", "topK", "2", "auxLossWeight", "0.05"), a.getOptionsMap());
    assertEquals(6, a.getSitesCount());
    assertEquals(List.of(384L, 2L), shape(m, "encoder.layer.0.attention.self.query.mixture_lora.router"));
    assertEquals(List.of(384L, 32L), shape(m, "encoder.layer.5.attention.self.query.mixture_lora.lora_A"), "8 experts × rank 4");
    // Layers 0-2 have 2 experts, all kept by top-2: no load balance there.
    assertEquals(List.of("encoder.layer.3.attention.self.query.mixture_lora.router.load_balance",
        "encoder.layer.4.attention.self.query.mixture_lora.router.load_balance",
        "encoder.layer.5.attention.self.query.mixture_lora.router.load_balance"), m.getAuxiliaryLossesList());
    assertTrue(m.getAdapterConfig().contains("\"peft_type\": \"GRAFT\""), m.getAdapterConfig());
    assertTrue(m.getAdapterConfig().contains("\"expertsPerLayer\": \"2,2,2,4,4,8\""), m.getAdapterConfig());
  }

  @Test
  void multiHeadRoutingCompilesWithSharedPieces() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Routed",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.MultiHeadRouting(pieces = 6, heads = 8, rank = 4)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Routed {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).succeededWithoutWarnings();
    Manifest m = manifest(c, "Routed");
    assertEquals(Map.of("rank", "4", "alpha", "16", "dropout", "0", "pieces", "6", "heads", "8", "sharePieces", "true"),
        m.getAdapters(0).getOptionsMap());
    assertEquals(12, m.getAdapters(0).getSitesCount());
    List<Parameter> shared = m.getParametersList().stream().filter(p -> p.getSiteNode().isEmpty()
        && p.getName().startsWith("multi_head_routing")).toList();
    assertEquals(List.of("multi_head_routing.384x384.lora_A", "multi_head_routing.384x384.lora_B"),
        shared.stream().map(Parameter::getName).toList(), "one inventory for the 12 query and value projections");
    assertEquals(List.of(8L, 6L, 48L, 4L), shared.get(0).getShapeList());
    assertEquals(List.of(8L, 6L), shape(m, "encoder.layer.3.attention.self.value.multi_head_routing.logits"));
  }

  @Test
  void expertsPerLayerOfTheWrongLengthIsGraft064() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.ShortList",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.MixtureOfLora(layers = {4, 5},",
        "    expertsPerLayer = {2, 4, 8})",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface ShortList {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT064] Mixture of LoRA experts expertsPerLayer has 3 entries, but the "
        + "declaration selects 2 layers [4, 5]").inFile(src).onLineContaining("expertsPerLayer = {2, 4, 8}");
    assertThat(c).hadErrorCount(1);
  }

  /** The tiny test host with its linear node renamed {@code /dense/MatMul}: a site without a layer index. */
  private static String hostWithoutLayers() throws IOException {
    dev.graft.spec.onnx.Onnx.ModelProto.Builder m = TestHosts.tiny(17).toBuilder();
    m.getGraphBuilder().getNodeBuilder(0).setName("/dense/MatMul");
    java.nio.file.Path file = TestHosts.dir().resolve("tiny-no-layer.onnx");
    java.nio.file.Files.write(file, m.build().toByteArray());
    file.toFile().deleteOnExit();
    return file.getFileName().toString();
  }

  @Test
  void expertsPerLayerOnASiteWithoutLayerIsGraft065() throws IOException {
    assertEquals("tiny-no-layer.onnx", hostWithoutLayers());
    JavaFileObject src = JavaFileObjects.forSourceLines("test.NoLayer",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-no-layer.onnx\")",
        "@dev.graft.annotations.MixtureOfLora(target = \".*/dense/MatMul\",",
        "    expertsPerLayer = {2})",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface NoLayer {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT065] Mixture of LoRA experts expertsPerLayer needs a layer index on every site")
        .inFile(src).onLineContaining("expertsPerLayer = {2}");
    assertThat(c).hadErrorCount(1);
  }

  @Test
  void topKAboveTheExpertsIsGraft066() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.TooMany",
        "package test;",
        "import dev.graft.annotations.MixtureOfLora;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@MixtureOfLora(experts = 3, router = MixtureOfLora.Router.TOP_K,",
        "    topK = 4)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface TooMany {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT066] Mixture of LoRA experts topK 4 exceeds the 3 experts of every site; use topK <= 3")
        .inFile(src).onLineContaining("topK = 4");
    assertThat(c).hadErrorCount(1);
  }

  @Test
  void headsThatDoNotDivideAreGraft067() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.OddHeads",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.MultiHeadRouting(heads = 5)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface OddHeads {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT067] Multi-head routing heads 5 must divide the input and output sizes of "
        + "every site, but /encoder/layer.0/attention/self/query/MatMul is [384, 384]")
        .inFile(src).onLineContaining("heads = 5");
    assertThat(c).hadErrorCount(1);
  }

  @Test
  void anExpertCountOutOfRangeIsGraft012() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.ZeroExperts",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.MixtureOfLora(expertsPerLayer = {2, 2, 0, 4, 4, 8})",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface ZeroExperts {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT012] Mixture of LoRA experts expertsPerLayer must be a list of integers in 1..256, got 2,2,0,4,4,8")
        .inFile(src).onLineContaining("expertsPerLayer = {2, 2, 0");
    assertThat(c).hadErrorCount(1);
  }
}
