package dev.graft.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;
import static dev.graft.testing.ProcessorCompiler.generatedClass;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.HostFeed;
import dev.graft.runtime.data.HostTensor;
import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.GraphProto;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import dev.graft.spec.onnx.Onnx.TypeProto;
import dev.graft.spec.onnx.Onnx.ValueInfoProto;
import dev.graft.testing.ProcessorCompiler;
import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Random;
import javax.tools.JavaFileObject;
import javax.tools.StandardLocation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hosts with float inputs through javac: {@code @Lora} and {@code @EarthAdapter} on the torch ViT
 * fixture (float32 {@code pixel_values [batch, 3, 16, 16]}) compile, the generated class takes the
 * pixels as {@code float[][][][]}, and driving it trains exactly as the runtime fed the same pixels
 * as a {@link HostFeed} does; a host input of a type the runtime does not feed is GRAFT380.
 */
class FloatHostDeclarationTest {
  private static final String VIT = "vit_opset17.onnx";
  private static final Path VIT_FIXTURE = Path.of("..", "integration", "src", "test", "resources", "hosts", "torch", VIT);

  @TempDir static Path hosts;

  private static final ProcessorCompiler VIT_HOSTS = ProcessorCompiler.withHostDir(GraftProcessor::new, () -> {
    try {
      Files.copy(VIT_FIXTURE, hosts.resolve(VIT), StandardCopyOption.REPLACE_EXISTING);
      return hosts;
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
  });

  private static JavaFileObject declaration(String name, String adapter) {
    return ProcessorCompiler.source(name,
        "package test;",
        "@dev.graft.annotations.Graft(host = \"" + VIT + "\")",
        adapter,
        "@dev.graft.annotations.Classification(labels = 3, pooling ="
            + " dev.graft.annotations.Classification.Pooling.FIRST_TOKEN, output = \"last_hidden_state\")",
        "interface " + name + " {}");
  }

  @Test
  void loraAndEarthAdapterOnTheVitCompileWithFloatPixelParameters() {
    for (String[] c : new String[][] {{"VitLora", "@dev.graft.annotations.Lora(rank = 4)"},
        {"VitEarth", "@dev.graft.annotations.EarthAdapter(cutoff = 0.5)"}}) {
      Compilation compilation = VIT_HOSTS.compile(declaration(c[0], c[1]));
      assertThat(compilation).succeededWithoutWarnings();
      String java = generatedClass(compilation, c[0]);
      assertTrue(java.contains("public float trainStep(float[][][][] pixelValues, long[] labels, float learningRate)"),
          java);
      assertTrue(java.contains("public float[][] predict(float[][][][] pixelValues)"), java);
      assertTrue(java.contains("hostInputs.put(\"pixel_values\", HostTensor.ofArray(pixelValues))"), java);
    }
  }

  @Test
  void aHostInputTheRuntimeDoesNotFeedIsGraft380OnTheHost() throws IOException {
    // tiny-sin with its float input x fed by Cast from a uint8 input 'pixels' [batch, sequence, 4]
    ModelProto tiny = TestHosts.tiny(17);
    GraphProto.Builder g = tiny.getGraph().toBuilder();
    ValueInfoProto x = g.getInput(0);
    TypeProto.Tensor.Builder uint8 = x.getType().getTensorType().toBuilder().setElemType(TensorProto.DataType.UINT8_VALUE);
    g.setInput(0, x.toBuilder().setName("pixels").setType(TypeProto.newBuilder().setTensorType(uint8)));
    java.util.List<NodeProto> nodes = new java.util.ArrayList<>(g.getNodeList());
    nodes.add(0, NodeProto.newBuilder().setName("/pixels/Cast").setOpType("Cast").addInput("pixels").addOutput("x")
        .addAttribute(AttributeProto.newBuilder().setName("to").setType(AttributeProto.AttributeType.INT)
            .setI(TensorProto.DataType.FLOAT_VALUE)).build());
    g.clearNode().addAllNode(nodes);
    Files.write(hosts.resolve("tiny-uint8.onnx"), tiny.toBuilder().setGraph(g).build().toByteArray());
    JavaFileObject src = ProcessorCompiler.source("Bytes",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"tiny-uint8.onnx\")",
        "@dev.graft.annotations.Lora(target = \".*dense/MatMul\", rank = 2)",
        "@dev.graft.annotations.Classification(labels = 2, output = \"y\")",
        "interface Bytes {}");
    Compilation c = VIT_HOSTS.compile(src);
    assertThat(c).hadErrorContaining("[GRAFT380] host input 'pixels' is uint8, which the generated class and the"
        + " runtime do not feed").inFile(src).onLineContaining("tiny-uint8.onnx");
    assertThat(c).hadErrorCount(1);
  }

  @Test
  void theGeneratedClassTrainsOnFloatPixelsAsTheRuntimeFedAHostFeedDoes(@TempDir Path out) throws Exception {
    Compilation compilation = VIT_HOSTS.compile(declaration("VitLora", "@dev.graft.annotations.Lora(rank = 4)"));
    assertThat(compilation).succeeded();
    for (JavaFileObject f : compilation.generatedFiles()) {
      String uri = f.toUri().getPath();
      int at = uri.indexOf("/" + StandardLocation.CLASS_OUTPUT.getName() + "/");
      if (at >= 0) {
        Path target = out.resolve(uri.substring(at + StandardLocation.CLASS_OUTPUT.getName().length() + 2));
        Files.createDirectories(target.getParent());
        try (InputStream in = f.openInputStream()) {
          Files.copy(in, target);
        }
      }
    }
    assertTrue(Files.exists(out.resolve("test/VitLoraGraft.class")), "generated class compiled");
    float[][][][] pixels = new float[2][3][16][16];
    Random r = new Random(7);
    for (float[][][] image : pixels) {
      for (float[][] channel : image) {
        for (float[] row : channel) {
          for (int x = 0; x < row.length; x++) {
            row[x] = (float) r.nextGaussian();
          }
        }
      }
    }
    long[] labels = {2, 0};
    ModelOptions options = ModelOptions.defaults().withHost(hosts.resolve(VIT)).withIntraOpThreads(1);
    try (URLClassLoader loader = new URLClassLoader(new URL[] {out.toUri().toURL()}, getClass().getClassLoader())) {
      Class<?> graft = loader.loadClass("test.VitLoraGraft");
      Object typed = graft.getMethod("load", ModelOptions.class).invoke(null, options);
      Method trainStep = graft.getMethod("trainStep", float[][][][].class, long[].class, float.class);
      Method predict = graft.getMethod("predict", float[][][][].class);
      try (AdapterModel direct = AdapterModel.open(AdapterGraphs.fromClasspath(loader, "test", "VitLora"), options);
           AutoCloseable closeTyped = (AutoCloseable) typed) {
        HostFeed feed = HostFeed.of("pixel_values", HostTensor.of(pixels));
        float[] typedLosses = new float[6];
        float[] directLosses = new float[6];
        for (int step = 0; step < 6; step++) {
          typedLosses[step] = (float) trainStep.invoke(typed, pixels, labels, 0.05f);
          directLosses[step] = direct.trainStep(feed, labels, 0.05f);
        }
        System.out.printf("ViT LoRA on float pixels: losses %s%n", java.util.Arrays.toString(typedLosses));
        assertArrayEquals(directLosses, typedLosses, 1e-6f, "generated class and HostFeed train alike");
        assertTrue(typedLosses[5] < 0.8f * typedLosses[0], java.util.Arrays.toString(typedLosses));
        float[][] logits = (float[][]) predict.invoke(typed, (Object) pixels);
        float[][] want = direct.predict(feed);
        assertEquals(2, logits.length);
        for (int i = 0; i < 2; i++) {
          assertArrayEquals(want[i], logits[i], 1e-6f, "logits row " + i);
        }
      }
    }
  }
}
