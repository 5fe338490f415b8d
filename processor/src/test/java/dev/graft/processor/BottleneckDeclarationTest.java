package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.manifest;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import com.google.testing.compile.JavaFileObjects;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * The bottleneck and host-parameter annotations ({@code @Bottleneck}, {@code @ParallelAdapter},
 * {@code @Hydra}, {@code @BitFit}, {@code @LayerNormTuning}, {@code @TrainModules}) through javac
 * on all-MiniLM-L6-v2: the manifest records each kind with its options, enum members as their
 * lower-case names, and the sites taken.
 */
class BottleneckDeclarationTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TestHosts::dir);

  @Test
  void bottleneckAdaptersCompileAndRecordTheirOptions() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Adapted",
        "package test;",
        "import dev.graft.annotations.Bottleneck;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@Bottleneck(config = Bottleneck.Config.HOULSBY, reduction = 32, nonlinearity = Bottleneck.Nonlinearity.GELU,",
        "    layers = {0, 1})",
        "@dev.graft.annotations.ParallelAdapter(scaling = 2.0, layers = 2)",
        "@dev.graft.annotations.Hydra(reduction = 64, nonlinearity = dev.graft.annotations.Hydra.Nonlinearity.TANH,",
        "    layers = 3)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Adapted {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).succeededWithoutWarnings();
    Manifest m = manifest(c, "Adapted");
    List<Adapter> a = m.getAdaptersList();
    assertEquals(List.of("bottleneck", "parallel", "hydra"), a.stream().map(Adapter::getKind).toList());
    assertEquals(Map.of("config", "houlsby", "reduction", "32", "nonlinearity", "gelu", "residual", "true",
        "initWeights", "mam_adapter"), a.get(0).getOptionsMap());
    assertEquals(List.of("encoder.layer.0.attention.output.dense", "encoder.layer.0.output.dense",
        "encoder.layer.1.attention.output.dense", "encoder.layer.1.output.dense"), a.get(0).getSitesList());
    assertEquals(Map.of("reduction", "2", "nonlinearity", "relu", "scaling", "2", "initWeights", "mam_adapter"),
        a.get(1).getOptionsMap());
    assertEquals(List.of("encoder.layer.2.output"), a.get(1).getSitesList());
    assertEquals("tanh", a.get(2).getOptionsMap().get("nonlinearity"));
    assertEquals(List.of("encoder.layer.3.output"), a.get(2).getSitesList());
    assertEquals(List.of(384L, 12L), m.getParameters(0).getShapeList(), "384 / 32 units");
    assertEquals(List.of(384L, 192L), m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.2.output.parallel_adapter.down.weight")).findFirst()
        .orElseThrow().getShapeList());
    assertTrue(m.getAdapterConfig().contains("\"peft_type\": \"GRAFT\""), m.getAdapterConfig());
  }

  @Test
  void hostParameterTuningCompilesAndRecordsTheTensors() throws IOException {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Tuned",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.BitFit(target = \".*attention.*\", layers = 5)",
        "@dev.graft.annotations.LayerNormTuning(layers = 4)",
        "@dev.graft.annotations.TrainModules(target = \".*/output/dense/MatMul\", layers = 5)",
        "@dev.graft.annotations.Classification(labels = 3)",
        "interface Tuned {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).succeededWithoutWarnings();
    Manifest m = manifest(c, "Tuned");
    assertEquals(List.of("bitfit", "layernorm", "full"), m.getAdaptersList().stream().map(Adapter::getKind).toList());
    assertEquals(List.of("encoder.layer.5.attention.self.query", "encoder.layer.5.attention.self.key",
        "encoder.layer.5.attention.self.value", "encoder.layer.5.attention.output.dense",
        "encoder.layer.5.attention.output.LayerNorm"), m.getAdapters(0).getSitesList());
    assertEquals(4, m.getAdapters(1).getSitesCount(), "two LayerNorms × (weight, bias)");
    assertEquals(List.of("encoder.layer.5.attention.output.dense", "encoder.layer.5.output.dense"),
        m.getAdapters(2).getSitesList());
    var weight = m.getParametersList().stream()
        .filter(p -> p.getName().equals("encoder.layer.5.output.dense.weight")).findFirst().orElseThrow();
    assertTrue(weight.getInitSource().startsWith("onnx::MatMul_"), weight.getInitSource());
    assertTrue(m.getHostInitializersList().contains(weight.getInitSource()));
    assertEquals("base_model.model.encoder.layer.5.output.dense.weight", weight.getSaveKey());
    assertEquals(List.of(384L, 1536L), weight.getSaveShapeList());
  }

  @Test
  void fullTuningWithoutATargetIsAnError() {
    JavaFileObject src = JavaFileObjects.forSourceLines("test.Everything",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"all-minilm-l6-v2.onnx\")",
        "@dev.graft.annotations.TrainModules(target = \"\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Everything {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).failed();
    assertThat(c).hadErrorContaining("[GRAFT061] Full tuning options do not fit the host: full tuning needs a target");
  }
}
