package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * {@code @Lora} with DoRA and PiSSA and {@code @DyLora} through javac on MiniLM: the annotations
 * with an empty target compile to the query and value sites, the manifest records the kinds and
 * options, and the family's error codes land on the option at fault.
 */
class LoraFamilyProcessorTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  @Test
  void doraPissaAndDyLoraCompileWithTheirDefaultSites() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Family",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.DyLora;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.Lora;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@Lora(rank = 4, dora = true, init = Lora.Init.PISSA, layers = {0, 1, 2})",
        "@DyLora(rank = 6, alpha = 12, layers = {3, 4, 5})",
        "@Classification(labels = 2)",
        "interface Family {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeededWithoutWarnings();
    Manifest m = manifest(compilation, "Family");
    assertEquals(2, m.getAdaptersCount());
    assertEquals("lora", m.getAdapters(0).getKind());
    assertEquals("", m.getAdapters(0).getTarget());
    assertEquals(Map.of("rank", "4", "alpha", "16", "dropout", "0", "rslora", "false", "dora", "true", "init", "pissa"),
        m.getAdapters(0).getOptionsMap());
    assertEquals(List.of("encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value",
        "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value",
        "encoder.layer.2.attention.self.query", "encoder.layer.2.attention.self.value"), m.getAdapters(0).getSitesList());
    assertEquals("dylora", m.getAdapters(1).getKind());
    assertEquals(Map.of("rank", "6", "alpha", "12", "dropout", "0"), m.getAdapters(1).getOptionsMap());
    assertEquals(6, m.getAdapters(1).getSitesCount());
    Parameter magnitude = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.2.attention.self.value.lora_magnitude_vector")).findFirst().orElseThrow();
    assertEquals(Init.HOST_COLUMN_NORM, magnitude.getInit());
    assertEquals(List.of(384L), magnitude.getShapeList());
    Parameter a0 = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.0.attention.self.query.lora_A0")).findFirst().orElseThrow();
    assertTrue(a0.getFrozen());
    assertEquals(Init.PISSA_A, a0.getInit());
    Parameter dyB = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.5.attention.self.value.lora_B")).findFirst().orElseThrow();
    assertEquals(List.of(6L, 384L), dyB.getShapeList());
    assertEquals("seed", m.getTrain().getSeed(), "DyLoRA draws its rank from the per-step seed");
    assertTrue(m.getAdapterConfig().contains("\"peft_type\": \"GRAFT\""), "LoRA with DyLoRA: Graft's own config");
  }

  @Test
  void pissaRankAboveTheWeightsRankPointsAtRank() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.BigPissa",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/layer.0/attention/self/query/MatMul\",",
        "    rank = 400,",
        "    init = dev.graft.annotations.Lora.Init.PISSA)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BigPissa {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT063] PiSSA rank 400 exceeds the rank of the weight of"
        + " /encoder/layer.0/attention/self/query/MatMul [384, 384]; use rank <= 384").inFile(src).onLineContaining("rank = 400");
  }

  @Test
  void cordaInitIsReadFromTheAnnotationAndItsRankErrorPointsAtRank() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.BigCorda",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/layer.0/attention/self/query/MatMul\",",
        "    rank = 400,",
        "    init = dev.graft.annotations.Lora.Init.CORDA_KPM)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BigCorda {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT340] CorDA rank 400 exceeds the rank of the weight of"
        + " /encoder/layer.0/attention/self/query/MatMul [384, 384]; use rank <= 384").inFile(src).onLineContaining("rank = 400");
  }

  @Test
  void dyloraOptionsAreCheckedLikeLoras() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.BadDy",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.DyLora(",
        "    rank = 0)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BadDy {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT012] DyLoRA rank must be in 1..4096, got 0")
        .inFile(src).onLineContaining("rank = 0");
  }

  @Test
  void quantizeBitsIsReadFromTheAnnotationAndQuantizesTheLoraFactors() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.OneBit",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(layers = {0}, quantizeBits = 1)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface OneBit {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeededWithoutWarnings();
    Manifest m = manifest(compilation, "OneBit");
    Parameter a = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.0.attention.self.query.lora_A")).findFirst().orElseThrow();
    assertEquals(1, a.getQuantizeBits());
    assertEquals(2, a.getQuantizeLevelsCount());
    assertEquals(-Math.sqrt(2 / Math.PI), a.getQuantizeLevels(0), 1e-9);
  }

  @Test
  void quantizeBitsOutsideTheWidthsPointsAtTheMember() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.ThreeBits",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Lora(layers = {0},",
        "    quantizeBits = 3)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface ThreeBits {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT300] LoRA quantizeBits must be 1, 2, 4 or 8 (or 0 for full"
        + " precision), got 3").inFile(src).onLineContaining("quantizeBits = 3");
  }
}
