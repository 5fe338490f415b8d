package dev.graft.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.testing.ProcessorCompiler;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * {@code @EarthAdapter} through javac: on all-MiniLM-L6-v2 (a text host, no static patch grid) GRAFT360
 * lands on the annotation. The success case on a float-image host (the ViT fixture) is in {@link
 * FloatHostDeclarationTest}.
 */
class EarthAdapterDeclarationTest {
  private static final ProcessorCompiler MINILM = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  @Test
  void aTextHostIsGraft360OnTheAnnotation() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Text",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.EarthAdapter",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Text {}");
    Compilation c = MINILM.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT360] Earth-Adapter at /encoder/layer.0/output/dense/MatMul: the value")
        .inFile(src).onLineContaining("@dev.graft.annotations.EarthAdapter");
  }
}
