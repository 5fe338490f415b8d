package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/** {@code @Mosa(draw)} and {@code @SketchTune(groupsPerRow)} through javac on all-MiniLM-L6-v2. */
class MosaSketchTuneProcessorTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  @Test
  void drawAndGroupsPerRowReachTheManifest() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Both",
        "package test;",
        "",
        "import dev.graft.annotations.*;",
        "",
        "@Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@Mosa(draw = \"step\", layers = {0})",
        "@SketchTune(groupSize = 1, groupsPerRow = 4, layers = {0})",
        "@Classification(labels = 2)",
        "interface Both {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).succeeded();
    Manifest m = manifest(compilation, "Both");
    assertEquals("step", m.getAdapters(0).getOptionsMap().get("draw"));
    assertEquals("4", m.getAdapters(1).getOptionsMap().get("groupsPerRow"));
    // Query and value of layer 0: 384 channels × 4 column groups, 16 values each.
    assertEquals(2, m.getParametersList().stream().filter(p -> p.getName().endsWith("sketchtune_dC")
        && p.getShapeList().equals(java.util.List.of(1536L, 16L))).count());
  }

  @Test
  void groupsPerRowThatDoesNotDivideARowIsGraft322() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.BadGroups",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.SketchTune(groupsPerRow = 5)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BadGroups {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT322] SketchTune groupsPerRow 5 must be at least 1 and divide the 384"
        + " inputs of each output channel of").inFile(src).onLineContaining("groupsPerRow = 5");
  }

  @Test
  void anUnknownDrawIsGraft012() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.BadDraw",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.Mosa(draw = \"layer\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface BadDraw {}");
    Compilation compilation = JAVAC.compile(src);
    assertThat(compilation).hadErrorContaining("[GRAFT012] MoSA draw must be one of [site, step], got layer")
        .inFile(src).onLineContaining("draw = \"layer\"");
  }
}
