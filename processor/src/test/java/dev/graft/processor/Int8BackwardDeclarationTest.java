package dev.graft.processor;

import static com.google.testing.compile.CompilationSubject.assertThat;
import static dev.graft.testing.ProcessorCompiler.resource;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.testing.compile.Compilation;
import dev.graft.spec.onnx.Onnx.ModelProto;
import dev.graft.spec.onnx.Onnx.NodeProto;
import dev.graft.testing.ProcessorCompiler;
import dev.graft.testing.TinyBertHost;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import javax.tools.JavaFileObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code @Graft(int8Backward = INTEGER)} through javac: on an int8 host (the tiny int8 BERT) the
 * train graph multiplies the gradient by the int8 weights and dequantizes none; the default
 * dequantizes; on the float all-MiniLM its 33 frozen products on the gradient's path are integer;
 * a head-only graft, whose gradient multiplies by no host weight, is GRAFT201 on the {@code @Graft}
 * line.
 */
class Int8BackwardDeclarationTest {
  private static final String INT8 = "tiny-int8-bert.onnx";

  @TempDir static Path hosts;

  private static final ProcessorCompiler HOSTS = ProcessorCompiler.withHostDir(GraftProcessor::new, () -> {
    try {
      Files.copy(TestHosts.dir().resolve(TestHosts.MINILM), hosts.resolve(TestHosts.MINILM),
          StandardCopyOption.REPLACE_EXISTING);
      Files.write(hosts.resolve(INT8), TinyBertHost.host(TinyBertHost.int8Graph(5)).model().toByteArray());
      return hosts;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  });

  private static JavaFileObject declaration(String name, String host, String int8Backward) {
    return ProcessorCompiler.source(name,
        "package test;",
        "@dev.graft.annotations.Graft(host = \"" + host + "\"" + int8Backward + ")",
        "@dev.graft.annotations.Lora(target = \".*/attention/self/(query|value)/MatMul(_quant)?\", rank = 2)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface " + name + " {}");
  }

  private static List<String> trainOps(Compilation compilation, String name) throws IOException {
    return ModelProto.parseFrom(resource(compilation, name + ".train.onnx")).getGraph().getNodeList().stream()
        .map(NodeProto::getOpType).toList();
  }

  @Test
  void integerOnAnInt8HostMultipliesByTheInt8WeightsAndTheDefaultDequantizes() throws IOException {
    Compilation integer = HOSTS.compile(declaration("Integer", INT8,
        ", int8Backward = dev.graft.annotations.Graft.Int8Backward.INTEGER"));
    assertThat(integer).succeededWithoutWarnings();
    List<String> ops = trainOps(integer, "Integer");
    assertTrue(ops.contains("DynamicQuantizeMatMul") && !ops.contains("DequantizeLinear"), ops.toString());

    Compilation dequantized = HOSTS.compile(declaration("Dequantized", INT8, ""));
    assertThat(dequantized).succeededWithoutWarnings();
    ops = trainOps(dequantized, "Dequantized");
    assertTrue(ops.contains("DequantizeLinear") && !ops.contains("DynamicQuantizeMatMul"), ops.toString());
  }

  @Test
  void integerOnAFloatHostMultipliesByTheQuantizedWeightsAndAHeadOnlyGraftIsGraft201() throws IOException {
    Compilation floatHost = HOSTS.compile(declaration("Float", TestHosts.MINILM,
        ", int8Backward = dev.graft.annotations.Graft.Int8Backward.INTEGER"));
    assertThat(floatHost).succeededWithoutWarnings();
    List<String> ops = trainOps(floatHost, "Float");
    assertTrue(ops.stream().filter("DynamicQuantizeMatMul"::equals).count() == 33, ops.toString());

    JavaFileObject probe = ProcessorCompiler.source("Probe",
        "package test;",
        "@dev.graft.annotations.Graft(host = \"" + TestHosts.MINILM + "\","
            + " int8Backward = dev.graft.annotations.Graft.Int8Backward.INTEGER)",
        "@dev.graft.annotations.Classification(labels = 2)",
        "interface Probe {}");
    assertThat(HOSTS.compile(probe))
        .hadErrorContaining("[GRAFT201] int8Backward = INTEGER applies to the backward pass's products with frozen"
            + " host weights")
        .inFile(probe).onLineContaining("@dev.graft.annotations.Graft(");
  }
}
