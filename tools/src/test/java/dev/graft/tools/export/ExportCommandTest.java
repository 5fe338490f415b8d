package dev.graft.tools.export;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.spec.manifest.Parameter;
import dev.graft.testing.TinyBertHost;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The export command on the tiny BERT: a graft's graphs in a folder, a trained adapter saved as a
 * PEFT folder, exported merged (run by ONNX Runtime: equals the model's predict within 1e-5) and
 * unmerged; a bottleneck under {@code --require-merged} fails with its code, bad arguments give
 * the usage.
 */
class ExportCommandTest {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();
  private static final long[][] IDS = {{3, 7, 12, 8, 1}, {5, 9, 13, 2, 0}};
  private static final long[][] MASK = {{1, 1, 1, 1, 1}, {1, 1, 1, 1, 0}};
  @TempDir static Path hostDir;
  private static Path host;
  @TempDir Path dir;

  @BeforeAll
  static void writeHost() throws Exception {
    host = hostDir.resolve("tiny.onnx");
    Files.write(host, TinyBertHost.host(3).model().toByteArray());
  }

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", IDS);
    m.put("attention_mask", MASK);
    m.put("token_type_ids", new long[2][5]);
    return m;
  }

  /** Writes the graft's graphs and manifest into {@code folder} as the processor names them. */
  private static void writeGraphs(CompiledGraft graft, Path folder) throws Exception {
    Files.createDirectories(folder);
    String n = graft.name();
    Files.write(folder.resolve(n + CompiledGraft.INFERENCE_SUFFIX), graft.inference().toByteArray());
    Files.write(folder.resolve(n + CompiledGraft.TRAIN_SUFFIX), graft.train().toByteArray());
    Files.write(folder.resolve(n + CompiledGraft.UPDATE_SUFFIX), graft.update().toByteArray());
    Files.write(folder.resolve(n + CompiledGraft.MERGE_SUFFIX), graft.merge().toByteArray());
    Files.writeString(folder.resolve(n + CompiledGraft.MANIFEST_SUFFIX), graft.manifestText());
  }

  /** A trained-like adapter (random values) saved as a PEFT folder; the model's predictions. */
  private float[][] trainAndSave(CompiledGraft graft, Path adapter) {
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withHost(host))) {
      Random r = new Random(3);
      for (Parameter p : model.getParameters()) {
        float[] v = model.getParameter(p.getName());
        for (int i = 0; i < v.length; i++) {
          v[i] += (float) (0.3 * r.nextGaussian());
        }
        model.setParameter(p.getName(), v);
      }
      model.saveAdapter(adapter);
      return model.predict(inputs());
    }
  }

  private static int run(ByteArrayOutputStream err, String... args) {
    return ExportCommand.run(args, new PrintStream(new ByteArrayOutputStream()), new PrintStream(err, true, StandardCharsets.UTF_8));
  }

  @Test
  void exportsATrainedAdapterMergedAndUnmerged() throws Exception {
    CompiledGraft graft = Graft.host(HostModel.read(host)).name("Tiny").lora("", o -> o.rank(2)).classification(2).compile();
    writeGraphs(graft, dir.resolve("graphs"));
    float[][] expected = trainAndSave(graft, dir.resolve("adapter"));
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(ExportCommand.OK, run(err, "--graft", dir.resolve("graphs/Tiny").toString(), "--host", host.toString(),
        "--adapter", dir.resolve("adapter").toString(), "--out", dir.resolve("merged").toString(), "--merged"), err.toString());
    float[][] got = run(dir.resolve("merged/model.onnx"), graft.manifest().getLogits());
    for (int i = 0; i < expected.length; i++) {
      for (int j = 0; j < expected[i].length; j++) {
        assertEquals(expected[i][j], got[i][j], 1e-5, "row " + i + ", label " + j);
      }
    }
    assertEquals(ExportCommand.OK, run(err, "--graft", dir.resolve("graphs/Tiny").toString(), "--host", host.toString(),
        "--adapter", dir.resolve("adapter").toString(), "--out", dir.resolve("unmerged").toString(), "--unmerged",
        "--model-file", "tiny.onnx"), err.toString());
    assertTrue(Files.exists(dir.resolve("unmerged/tiny.onnx.data")));
    var m = dev.graft.spec.onnx.Onnx.ModelProto.parseFrom(Files.readAllBytes(dir.resolve("unmerged/tiny.onnx")));
    assertTrue(m.getGraph().getInputList().stream().anyMatch(
        i -> i.getName().equals("encoder.layer.0.attention.self.query.lora_A.weight")), "the adapter's named inputs");
  }

  @Test
  void aBottleneckUnderRequireMergedFailsWithItsCode() throws Exception {
    CompiledGraft graft = Graft.host(HostModel.read(host)).name("Bottle").bottleneck("", o -> {}).classification(2).compile();
    writeGraphs(graft, dir.resolve("graphs"));
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(ExportCommand.FAILED, run(err, "--graft", dir.resolve("graphs/Bottle").toString(), "--host",
        host.toString(), "--out", dir.resolve("out").toString(), "--require-merged"));
    assertTrue(err.toString().contains("[GRAFT-R050]"), err.toString());
    assertTrue(Files.notExists(dir.resolve("out")), "nothing written");
  }

  @Test
  void badArgumentsGiveTheUsage() {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    assertEquals(ExportCommand.USAGE, run(err, "--out", dir.toString()));
    assertTrue(err.toString().contains("expected one of --graft and --resource, given neither"), err.toString());
    assertTrue(err.toString().contains("usage: ExportCommand"), err.toString());
    err.reset();
    assertEquals(ExportCommand.USAGE, run(err, "--graft", "x/Y", "--out", "o", "--dylora-rank", "two"));
    assertEquals(ExportCommand.USAGE, run(err, "--graft", "x/Y", "--frobnicate"));
    assertTrue(err.toString().contains("unknown argument '--frobnicate'"), err.toString());
  }

  private static float[][] run(Path model, String output) throws Exception {
    Map<String, OnnxTensor> feeds = new HashMap<>();
    try (OrtSession s = ENV.createSession(model.toString(), new OrtSession.SessionOptions())) {
      for (var e : inputs().entrySet()) {
        long[] flat = new long[10];
        for (int i = 0; i < 2; i++) {
          System.arraycopy(e.getValue()[i], 0, flat, i * 5, 5);
        }
        feeds.put(e.getKey(), OnnxTensor.createTensor(ENV, LongBuffer.wrap(flat), new long[] {2, 5}));
      }
      try (OrtSession.Result r = s.run(feeds)) {
        FloatBuffer b = ((OnnxTensor) r.get(output).orElseThrow()).getFloatBuffer();
        float[][] out = new float[2][2];
        b.get(out[0]);
        b.get(out[1]);
        return out;
      }
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
  }
}
