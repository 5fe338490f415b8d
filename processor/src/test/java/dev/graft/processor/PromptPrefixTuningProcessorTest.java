package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/** {@code @PromptTuning} and {@code @PrefixTuning} through javac on the real MiniLM host. */
class PromptPrefixTuningProcessorTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  @Test
  void promptTuningAnnotationCompilesAndTheManifestRecordsIt() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.SoftPrompt",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.PromptTuning;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@PromptTuning(tokens = 8, init = PromptTuning.Init.RANDOM)",
        "@Classification(labels = 2)",
        "interface SoftPrompt {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeededWithoutWarnings();
    Manifest m = manifest(compilation, "SoftPrompt");
    assertEquals("prompt_tuning", m.getAdapters(0).getKind());
    assertEquals(Map.of("tokens", "8", "init", "random"), m.getAdapters(0).getOptionsMap());
    assertEquals(List.of("embeddings.word_embeddings"), m.getAdapters(0).getSitesList());
    Parameter p = m.getParameters(0);
    assertEquals(List.of(8L, 384L), p.getShapeList());
    assertEquals("prompt_embeddings", p.getSaveKey());
  }

  @Test
  void prefixTuningAnnotationCompilesAndTheManifestRecordsIt() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Prefix",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.PrefixTuning;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@PrefixTuning(tokens = 4, projection = true, projectionHidden = 32, layers = {0, 5})",
        "@Classification(labels = 2)",
        "interface Prefix {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeededWithoutWarnings();
    Manifest m = manifest(compilation, "Prefix");
    assertEquals("prefix_tuning", m.getAdapters(0).getKind());
    assertEquals(Map.of("tokens", "4", "projection", "true", "projectionHidden", "32"), m.getAdapters(0).getOptionsMap());
    assertEquals(List.of(0, 5), m.getAdapters(0).getLayersList());
    assertEquals(List.of("encoder.layer.0.attention.self", "encoder.layer.5.attention.self"), m.getAdapters(0).getSitesList());
    assertEquals(List.of(32L, 2L * 2 * 384), m.getParameters(3).getShapeList());
  }

  @Test
  void tokensOutOfRangeIsReportedOnTheAnnotationValue() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.NoTokens",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.PromptTuning;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@PromptTuning(",
        "    tokens = 0)",
        "@Classification(labels = 2)",
        "interface NoTokens {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT012] prompt tuning tokens must be in 1..4096, got 0")
        .inFile(src).onLineContaining("tokens = 0");
  }

  @Test
  void prefixTuningOnAHostWithoutAttentionIsGraft077() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.NoAttention",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.PrefixTuning;",
        "",
        "@Graft(host = \"" + TestHosts.TINY_SIN + "\")",
        "@PrefixTuning",
        "@Classification(labels = 2)",
        "interface NoAttention {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT077] cannot place prefix tuning on " + TestHosts.TINY_SIN)
        .inFile(src).onLineContaining("@PrefixTuning");
  }

  @Test
  void promptTuningOnAHostWithoutInputIdsIsGraft075() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.NoIds",
        "package test;",
        "",
        "import dev.graft.annotations.Classification;",
        "import dev.graft.annotations.Graft;",
        "import dev.graft.annotations.PromptTuning;",
        "",
        "@Graft(host = \"" + TestHosts.TINY_SIN + "\")",
        "@PromptTuning(tokens = 4)",
        "@Classification(labels = 2)",
        "interface NoIds {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT075] cannot place prompt tuning on " + TestHosts.TINY_SIN)
        .inFile(src).onLineContaining("@PromptTuning");
  }
}
