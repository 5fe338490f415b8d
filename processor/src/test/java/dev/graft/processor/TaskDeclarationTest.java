package dev.graft.processor;

import static dev.graft.testing.ProcessorCompiler.generatedClass;
import static dev.graft.testing.ProcessorCompiler.manifest;
import static dev.graft.testing.ProcessorCompiler.source;
import static com.google.testing.compile.CompilationSubject.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import dev.graft.compiler.ir.Dim;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.ShapeInference;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;

/**
 * The task annotations ({@code @Classification} options, {@code @Regression}, {@code
 * @MultiLabel}, {@code @CausalLm}) through javac: one test per error code they add, and the
 * generated class's signatures per task (compiled against the real runtime).
 */
class TaskDeclarationTest {
  private static final ProcessorCompiler JAVAC = ProcessorCompiler.withHostDir(GraftProcessor::new, TaskDeclarationTest::hostDir);

  /**
   * input_ids, attention_mask int64 [batch, sequence] → Gather(embeddings [12, 4]) → {@code
   * /layer.0/dense/MatMul} [4, 4] → {@code logits} = · [4, 12]; outputs {@code logits} [batch,
   * sequence, 12] then {@code hidden} [batch, sequence, 4].
   */
  static final String TINY_LM = "tiny-lm.onnx";

  private static synchronized Path hostDir() {
    Path dir = TestHosts.dir();
    Path file = dir.resolve(TINY_LM);
    if (!Files.isRegularFile(file)) {
      Graph g = new Graph();
      List<Dim> bs = List.of(Dim.symbol("batch"), Dim.symbol("sequence"));
      g.addInput("input_ids", TensorType.of(TensorType.INT64, bs));
      g.addInput("attention_mask", TensorType.of(TensorType.INT64, bs));
      Random r = new Random(5);
      String emb = g.op("/embeddings/Gather", "Gather", List.of(weight(g, r, "embeddings.weight", 12, 4), "input_ids"));
      String h = g.opTo("hidden", "/layer.0/dense/MatMul", "MatMul", List.of(emb, weight(g, r, "layer.0.dense.weight", 4, 4)));
      g.opTo("logits", "/lm_head/MatMul", "MatMul", List.of(h, weight(g, r, "lm_head.weight", 4, 12)));
      g.outputs().addAll(List.of("logits", "hidden"));
      ShapeInference.run(g);
      try {
        Files.write(file, OnnxExport.write(g, "tiny-lm").toByteArray());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      file.toFile().deleteOnExit();
    }
    return dir;
  }

  private static String weight(Graph g, Random r, String name, long rows, long cols) {
    double[] v = new double[(int) (rows * cols)];
    for (int i = 0; i < v.length; i++) {
      v[i] = r.nextGaussian();
    }
    g.addInitializer(Tensors.floats(name, TensorType.FLOAT, List.of(rows, cols), v), false);
    return name;
  }

  // ---------------------------------------------------------------- success

  @Test
  void causalLmGraftTrainsOnTokens() throws IOException {
    JavaFileObject src = source("TinyLm",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\", rank = 2)",
        "@dev.graft.annotations.CausalLm(ignoreIndex = -1, labelSmoothing = 0.05)",
        "interface TinyLm {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).succeededWithoutWarnings();
    String java = generatedClass(c, "TinyLm");
    assertTrue(java.contains("public static final int VOCAB_SIZE = 12;"), java);
    assertTrue(java.contains("public float trainStep(long[][] inputIds, long[][] attentionMask, float learningRate)"), java);
    assertTrue(java.contains("public float trainStep(long[][] inputIds, long[][] attentionMask, long[][] labels,"), java);
    assertTrue(java.contains("public float[][][] predict(long[][] inputIds, long[][] attentionMask)"), java);
    assertTrue(java.contains("model.predictSequence(hostInputs(inputIds, attentionMask))"), java);
    Manifest m = manifest(c, "TinyLm");
    assertEquals(Loss.CAUSAL_LM_CROSS_ENTROPY, m.getTask().getLoss());
    assertEquals(-1, m.getTask().getIgnoreIndex());
    assertEquals(0.05, m.getTask().getLabelSmoothing());
    assertEquals("logits", m.getTask().getHostOutput());
  }

  @Test
  void regressionAndMultiLabelGraftsTrainOnFloatTargets() throws IOException {
    JavaFileObject reg = source("TinyRegression",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\", rank = 2)",
        "@dev.graft.annotations.Regression(targets = 3, output = \"hidden\")",
        "interface TinyRegression {}");
    JavaFileObject multi = source("TinyMultiLabel",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\", rank = 2)",
        "@dev.graft.annotations.MultiLabel(labels = 5, output = \"hidden\",",
        "    pooling = dev.graft.annotations.Classification.Pooling.FIRST_TOKEN)",
        "interface TinyMultiLabel {}");
    Compilation c = JAVAC.compile(reg, multi);
    assertThat(c).succeededWithoutWarnings();
    String r = generatedClass(c, "TinyRegression");
    assertTrue(r.contains("public static final int NUM_TARGETS = 3;"), r);
    assertTrue(r.contains("public float trainStep(long[][] inputIds, long[][] attentionMask, float[][] targets,"), r);
    assertTrue(r.contains("public float[][] predict(long[][] inputIds, long[][] attentionMask)"), r);
    assertEquals(Loss.MEAN_SQUARED_ERROR, manifest(c, "TinyRegression").getTask().getLoss());
    assertEquals("predictions", manifest(c, "TinyRegression").getLogits());
    String m = generatedClass(c, "TinyMultiLabel");
    assertTrue(m.contains("public static final int NUM_LABELS = 5;"), m);
    assertTrue(m.contains("public float trainStep(long[][] inputIds, long[][] attentionMask, float[][] labels,"), m);
    assertEquals(Loss.BINARY_CROSS_ENTROPY_WITH_LOGITS, manifest(c, "TinyMultiLabel").getTask().getLoss());
  }

  @Test
  void tokenClassificationGraftTrainsOnOneLabelPerToken() throws IOException {
    JavaFileObject src = source("TinyTagger",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\", rank = 2)",
        "@dev.graft.annotations.TokenClassification(labels = 4, output = \"hidden\", ignoreIndex = -1)",
        "interface TinyTagger {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).succeededWithoutWarnings();
    String java = generatedClass(c, "TinyTagger");
    assertTrue(java.contains("public static final int NUM_LABELS = 4;"), java);
    assertTrue(java.contains("public float trainStep(long[][] inputIds, long[][] attentionMask, long[][] labels,"), java);
    assertTrue(java.contains("public float[][][] predict(long[][] inputIds, long[][] attentionMask)"), java);
    assertTrue(java.contains("model.predictSequence(hostInputs(inputIds, attentionMask))"), java);
    Manifest m = manifest(c, "TinyTagger");
    assertEquals(Loss.TOKEN_CROSS_ENTROPY, m.getTask().getLoss());
    assertEquals(-1, m.getTask().getIgnoreIndex());
    assertEquals("hidden", m.getTask().getHostOutput());
    assertEquals(4, m.getHead().getNumLabels());
  }

  @Test
  void tokenClassificationOptionsOutOfRange() {
    JavaFileObject one = source("OneTag",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.TokenClassification(output = \"hidden\",",
        "    labels = 1)",
        "interface OneTag {}");
    Compilation c = JAVAC.compile(one);
    assertThat(c).hadErrorContaining("[GRAFT020] classification needs at least 2 labels, got 1")
        .inFile(one).onLineContaining("labels = 1");
    assertThat(c).hadErrorCount(1);
    JavaFileObject ignored = source("IgnoreTag",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.TokenClassification(labels = 3, output = \"hidden\",",
        "    ignoreIndex = 2)",
        "interface IgnoreTag {}");
    assertThat(JAVAC.compile(ignored)).hadErrorContaining("[GRAFT025] ignore index 2 is a class index in [0, 3)")
        .inFile(ignored).onLineContaining("ignoreIndex = 2");
    JavaFileObject logits = source("LogitsTag",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.TokenClassification(labels = 3, output = \"missing\")",
        "interface LogitsTag {}");
    assertThat(JAVAC.compile(logits)).hadErrorContaining("[GRAFT021]");
  }

  // ---------------------------------------------------------------- one test per error code

  @Test
  void nothingToTrain() {
    JavaFileObject src = source("NoAdapter",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.CausalLm",
        "interface NoAdapter {}");
    assertThat(JAVAC.compile(src)).hadErrorContaining("[GRAFT018] NoAdapter has no trainable parameter")
        .inFile(src).onLineContaining("@dev.graft.annotations.Graft(");
  }

  @Test
  void labelSmoothingOutOfRange() {
    JavaFileObject src = source("Smooth",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2, output = \"hidden\",",
        "    labelSmoothing = 1.0)",
        "interface Smooth {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT024] label smoothing must be in [0, 1), got 1.0")
        .inFile(src).onLineContaining("labelSmoothing = 1.0");
    assertThat(c).hadErrorCount(1);
  }

  @Test
  void ignoreIndexIsAClass() {
    JavaFileObject src = source("IgnoreClass",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 3, output = \"hidden\",",
        "    ignoreIndex = 1)",
        "interface IgnoreClass {}");
    assertThat(JAVAC.compile(src)).hadErrorContaining("[GRAFT025] ignore index 1 is a class index in [0, 3)")
        .inFile(src).onLineContaining("ignoreIndex = 1");
  }

  @Test
  void taskSizeOutOfRange() {
    JavaFileObject reg = source("NoTargets",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Regression(output = \"hidden\",",
        "    targets = 0)",
        "interface NoTargets {}");
    JavaFileObject multi = source("NoLabels",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.MultiLabel(output = \"hidden\",",
        "    labels = 0)",
        "interface NoLabels {}");
    Compilation c = JAVAC.compile(reg, multi);
    assertThat(c).hadErrorContaining("[GRAFT026] regression needs at least 1 target, got 0")
        .inFile(reg).onLineContaining("targets = 0");
    assertThat(c).hadErrorContaining("[GRAFT026] multi-label classification needs at least 1 label, got 0")
        .inFile(multi).onLineContaining("labels = 0");
  }

  @Test
  void lmOutputShape() {
    JavaFileObject src = source("LmOnPooled",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-sin.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.CausalLm(",
        "    output = \"z\")",
        "interface LmOnPooled {}");
    assertThat(JAVAC.compile(src)).hadErrorContaining("[GRAFT027] host output 'z' must be vocabulary logits")
        .inFile(src).onLineContaining("output = \"z\"");
  }

  @Test
  void lmInputIdsMissing() {
    JavaFileObject src = source("LmWithoutIds",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-sin.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.CausalLm(labelSmoothing = 0.1)",
        "interface LmWithoutIds {}");
    Compilation c = JAVAC.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT028] the causal LM loss takes its labels from host input 'input_ids'")
        .inFile(src).onLineContaining("@dev.graft.annotations.CausalLm(");
    assertThat(c).hadErrorCount(1);
  }

  @Test
  void tasksConflict() {
    JavaFileObject src = source("TwoTasks",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-lm.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*/dense/MatMul\")",
        "@dev.graft.annotations.Classification(labels = 2)",
        "@dev.graft.annotations.CausalLm(ignoreIndex = -1)",
        "interface TwoTasks {}");
    assertThat(JAVAC.compile(src))
        .hadErrorContaining("[GRAFT029] TwoTasks declares 2 tasks (@Classification, @CausalLm); declare exactly one")
        .inFile(src).onLineContaining("@dev.graft.annotations.CausalLm(");
  }
}
