package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.compiler.kinds.lora.Ia3Kind;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/** {@code @LoKr}, {@code @LoHa}, {@code @Vera} and {@code @Ia3} through javac on all-MiniLM-L6-v2. */
class KronHadamardVeraIa3ProcessorTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  @Test
  void allFourKindsCompileAndTheManifestRecordsKindsAndOptions() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Four",
        "package test;",
        "",
        "import dev.graft.annotations.*;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@LoKr(target = \".*/query/MatMul\", rank = 4, factor = 16, decomposeBoth = true, layers = {0, 1})",
        "@LoHa(target = \".*/attention/output/dense/MatMul\", rank = 2, alpha = 4, dropout = 0.1)",
        "@Vera(target = \".*/value/MatMul\", rank = 16, dInitial = 0.5)",
        "@Ia3(target = \".*/key/MatMul|.*layer.\\\\d/output/dense/MatMul\")",
        "@Classification(labels = 2)",
        "interface Four {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeeded();
    Manifest m = manifest(compilation, "Four");
    assertEquals(List.of("lokr", "loha", "vera", "ia3"), m.getAdaptersList().stream().map(Adapter::getKind).toList());
    assertEquals(Map.of("rank", "4", "alpha", "8", "dropout", "0", "factor", "16", "decomposeBoth", "true"),
        m.getAdapters(0).getOptionsMap());
    assertEquals(List.of(0, 1), m.getAdapters(0).getLayersList());
    assertEquals(2, m.getAdapters(0).getSitesCount());
    assertEquals(Map.of("rank", "2", "alpha", "4", "dropout", "0.1"), m.getAdapters(1).getOptionsMap());
    assertEquals(6, m.getAdapters(1).getSitesCount());
    assertEquals(Map.of("rank", "16", "dInitial", "0.5", "dropout", "0", "saveProjection", "true"),
        m.getAdapters(2).getOptionsMap());
    assertEquals(12, m.getAdapters(3).getSitesCount());
    // LoKr on 384 × 384 with factor 16: W1 [16, 16] (rank 4 < 16/2: decomposed), W2 [24, 24] (rank 4 < 12: decomposed).
    assertTrue(m.getParametersList().stream().anyMatch(p -> p.getName().equals("encoder.layer.0.attention.self.query.lokr_w1_b")
        && p.getShapeList().equals(List.of(16L, 4L))));
    assertTrue(m.getParametersList().stream().anyMatch(p -> p.getName().equals("vera_A")
        && p.getShapeList().equals(List.of(384L, 16L)) && p.getFrozen()));
    // Mixed kinds: Graft's own adapter config.
    assertTrue(m.getAdapterConfig().contains("\"peft_type\": \"GRAFT\""), m.getAdapterConfig());
  }

  @Test
  void ia3WithDefaultsTakesKeyValueAndFeedForwardSites() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Scaled",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Ia3",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Scaled {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeeded();
    Manifest m = manifest(compilation, "Scaled");
    assertEquals("ia3", m.getAdapters(0).getKind());
    assertEquals("", m.getAdapters(0).getTarget());
    assertEquals(Ia3Kind.FEEDFORWARD, m.getAdapters(0).getOptionsOrThrow("feedforward"), "annotation default = kind default");
    assertEquals(18, m.getAdapters(0).getSitesCount());
    assertTrue(m.getAdapterConfig().contains("\"peft_type\": \"IA3\""), m.getAdapterConfig());
  }

  @Test
  void lokrFactorThatDoesNotDivideIsGraft061() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.BadFactor",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.LoKr(factor = 5)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BadFactor {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT061] LoKr options do not fit the host: factor 5 does not divide the site dimensions [384]")
        .inFile(src).onLineContaining("factor = 5");
    assertThat(compilation).hadErrorCount(1);
  }
}
