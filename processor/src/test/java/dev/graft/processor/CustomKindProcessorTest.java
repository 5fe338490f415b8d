package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.op.CustomAdapterKind;
import dev.graft.compiler.op.Definition;
import dev.graft.compiler.op.Param;
import dev.graft.compiler.op.Tensor;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * A user-defined adapter kind on the processor path (listed in this module's test resources
 * under {@code META-INF/services/dev.graft.compiler.kinds.AdapterKind}, as AutoService writes it)
 * with its annotation among the compiled sources: javac reads the annotation like a built-in
 * one, and reports the definition's faults on it.
 */
class CustomKindProcessorTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  /** A scaled parallel branch {@code v + scale·tanh(x·down)·up}, declared by {@code @test.ScaledBranch}. */
  public static final class ScaledBranch extends CustomAdapterKind {
    @Override
    public String id() {
      return "scaled_branch";
    }

    @Override
    public String displayName() {
      return "Scaled branch";
    }

    @Override
    public String annotation() {
      return "test.ScaledBranch";
    }

    @Override
    public List<AdapterOption> options() {
      return List.of(AdapterOption.integer("width", 4, 1, 1024, "units of the branch"),
          AdapterOption.positive("scale", 1, "the branch's output is multiplied by it"));
    }

    @Override
    protected Tensor define(Definition d) {
      Param down = d.param("down", d.inWidth(), d.option("width")).kaimingUniform();
      Param up = d.param("up", d.option("width"), d.outWidth());
      return d.value().plus(d.input().matmul(down).tanh().matmul(up).times(d.doubleOption("scale")));
    }
  }

  /** Multiplies the output by a parameter of the branch's width (GRAFT090 unless width = out). */
  public static final class BrokenBranch extends CustomAdapterKind {
    @Override
    public String id() {
      return "broken_branch";
    }

    @Override
    public String displayName() {
      return "Broken branch";
    }

    @Override
    public String annotation() {
      return "test.BrokenBranch";
    }

    @Override
    public List<AdapterOption> options() {
      return List.of(AdapterOption.integer("width", 4, 1, 1024, "units"));
    }

    @Override
    protected Tensor define(Definition d) {
      return d.value().times(d.param("s", d.option("width")));
    }
  }

  /** The custom annotations as a user's module declares them: target, layers and the kind's options. */
  private static final JavaFileObject SCALED_BRANCH = JavaFileObjects.forSourceLines("test.ScaledBranch",
      "package test;",
      "import java.lang.annotation.*;",
      "@Retention(RetentionPolicy.SOURCE) @Target(ElementType.TYPE)",
      "public @interface ScaledBranch {",
      "  String target() default \"\";",
      "  int[] layers() default {};",
      "  int width() default 4;",
      "  double scale() default 1;",
      "}");
  private static final JavaFileObject BROKEN_BRANCH = JavaFileObjects.forSourceLines("test.BrokenBranch",
      "package test;",
      "public @interface BrokenBranch {",
      "  String target() default \"\";",
      "  int width() default 4;",
      "}");

  @Test
  void aCustomKindsAnnotationCompilesLikeABuiltInOne() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Branched",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@ScaledBranch(target = \".*/attention/self/value/MatMul\", layers = {4, 5}, width = 16, scale = 0.5)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Branched {}");
    Compilation c = JAVAC.compile(SCALED_BRANCH, src);
    assertThat(c).succeededWithoutWarnings();
    assertThat(c).generatedSourceFile("test.BranchedGraft");
    Manifest m = manifest(c, "Branched");
    assertEquals("scaled_branch", m.getAdapters(0).getKind());
    assertEquals(Map.of("width", "16", "scale", "0.5"), m.getAdapters(0).getOptionsMap());
    assertEquals(List.of("encoder.layer.4.attention.self.value", "encoder.layer.5.attention.self.value"),
        m.getAdapters(0).getSitesList());
    Parameter down = m.getParameters(0);
    assertEquals("encoder.layer.4.attention.self.value.scaled_branch.down", down.getName());
    assertEquals(List.of(384L, 16L), down.getShapeList());
  }

  @Test
  void aFaultOfTheDefinitionIsReportedOnTheAnnotation() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Broken",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@BrokenBranch(target = \".*/attention/self/query/MatMul\", width = 8)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Broken {}");
    Compilation c = JAVAC.compile(BROKEN_BRANCH, src);
    assertThat(c).failed();
    assertThat(c).hadErrorCount(1);
    assertThat(c).hadErrorContaining("[GRAFT090] Broken branch definition at encoder.layer.0.attention.self.query:"
        + " times (*) needs operands whose shapes broadcast (equal, or 1, aligned from the last axis), got"
        + " [batch_size, sequence_length, 384] and [8]").inFile(src).onLineContaining("@BrokenBranch");
  }
}
