package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonElement;
import com.google.gson.JsonParser;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The opt-in session options of {@link ModelOptions}: ONNX Runtime's profile and optimized-model dump. */
class SessionOptionsTest {
  private static Map<String, long[][]> batch() {
    return Map.of("input_ids", new long[][] {{1, 2}, {3, 4}}, "attention_mask", new long[2][2]);
  }

  @Test
  void profilingWritesOneTracePerSessionWithTheKernelsThatRan(@TempDir Path dir) throws Exception {
    Path profiles = Files.createDirectory(dir.resolve("profiles"));
    try (AdapterModel model = AdapterModel.open(TinyGraphs.graphs(),
        ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)).withProfiling(profiles))) {
      model.trainStep(batch(), new long[] {0, 1}, 0.1f);
      model.predict(batch());
    }
    List<Path> traces;
    try (Stream<Path> files = Files.list(profiles)) {
      traces = files.sorted().toList();
    }
    assertEquals(2, traces.size(), traces.toString());
    String infer = traces.stream().map(p -> p.getFileName().toString()).filter(n -> n.startsWith("Tiny.infer_")).findFirst()
        .orElseThrow();
    assertTrue(infer.endsWith(".json"), infer);
    for (Path trace : traces) {
      long kernels = 0;
      for (JsonElement e : JsonParser.parseString(Files.readString(trace)).getAsJsonArray()) {
        var o = e.getAsJsonObject();
        if (o.get("cat").getAsString().equals("Node") && o.get("name").getAsString().endsWith("_kernel_time")) {
          kernels++;
        }
      }
      assertTrue(kernels > 0, trace + " records kernel runs");
    }
  }

  @Test
  void optimizedModelDumpWritesEachSessionsGraph(@TempDir Path dir) throws Exception {
    Path dumps = Files.createDirectory(dir.resolve("dumps"));
    try (AdapterModel model = AdapterModel.open(TinyGraphs.graphs(),
        ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)).withOptimizedModelDump(dumps))) {
      model.predict(batch());
    }
    for (String name : List.of("Tiny.infer.optimized.onnx", "Tiny.train.optimized.onnx")) {
      ModelProto m = ModelProto.parseFrom(Files.readAllBytes(dumps.resolve(name)));
      assertTrue(m.getGraph().getNodeCount() > 0, name);
    }
  }

  @Test
  void aMissingDirectoryIsAnIoError(@TempDir Path dir) throws Exception {
    Path host = TinyGraphs.writeHost(dir);
    GraftException e = assertThrows(GraftException.class, () -> AdapterModel.open(TinyGraphs.graphs(),
        ModelOptions.defaults().withHost(host).withProfiling(dir.resolve("absent"))));
    assertEquals(RuntimeErrorCode.IO, e.getErrorCode());
    assertTrue(e.getMessage().contains("absent"), e.getMessage());
  }
}
