package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtProvider;
import dev.graft.runtime.session.CudaLibraries;
import dev.graft.runtime.session.Device;
import dev.graft.runtime.session.NodePlacement;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The CUDA plumbing that can be checked without a GPU (the {@code GRAFT-R370} message from the
 * loader's error, the node-placement check on the CPU), and the GPU check itself, tagged {@code
 * gpu} and skipped by assumption where the ONNX Runtime on the classpath has no CUDA provider or
 * the provider does not load.
 */
class CudaPlacementTest {
  private static Map<String, long[][]> batch() {
    return Map.of("input_ids", new long[][] {{1, 2}, {3, 4}}, "attention_mask", new long[][] {{1, 1}, {1, 1}});
  }

  @Test
  void theLoaderErrorNamesTheMissingLibrariesInR370() {
    // The text ONNX Runtime 1.29 writes when libonnxruntime_providers_cuda.so finds no cuBLASLt.
    String ort = "Failed to load library libonnxruntime_providers_cuda.so with error: libcublasLt.so.12: cannot open"
        + " shared object file: No such file or directory";
    assertEquals(List.of("libcublasLt.so.12"), CudaLibraries.namedIn(ort));
    assertEquals(List.of("libcudnn.so.9", "cudart64_12.dll"),
        CudaLibraries.namedIn("libcudnn.so.9: cannot open; cudart64_12.dll missing; libcudnn.so.9 again"));
    assertEquals(List.of(), CudaLibraries.namedIn("CUDA failure 100: no CUDA-capable device is detected"));
    GraftException e = new GraftException(RuntimeErrorCode.CUDA_LIBRARIES, CudaLibraries.message(ort));
    assertTrue(e.getMessage().startsWith("[GRAFT-R370] "), e.getMessage());
    assertTrue(e.getMessage().contains("Missing: libcublasLt.so.12. "), e.getMessage());
    for (String lib : CudaLibraries.REQUIRED) {
      assertTrue(e.getMessage().contains(lib), lib + " in " + e.getMessage());
    }
    assertTrue(CudaLibraries.message("no CUDA-capable device").contains("The loader named no library"));
  }

  @Test
  void onTheCpuEveryNodeOfBothGraphsIsPlacedOnTheCpu(@TempDir Path dir) throws Exception {
    List<Path> traces = profiles(dir, Device.CPU);
    assertEquals(2, traces.size(), traces.toString());
    for (Path trace : traces) {
      NodePlacement p = NodePlacement.fromProfile(trace);
      assertEquals(Set.of(NodePlacement.CPU), p.countByProvider().keySet(), trace.toString());
      assertEquals(List.of(), p.notOn(NodePlacement.CPU));
      List<String> offCuda = p.notOn(NodePlacement.CUDA);
      assertEquals(p.nodes().size(), offCuda.size());
      assertTrue(p.nodes().values().stream().anyMatch(n -> n.op().equals("Add")),
          p.nodes().toString());
      assertTrue(offCuda.get(0).endsWith(") on CPUExecutionProvider"), offCuda.get(0));
    }
  }

  @Test
  void aFileThatIsNoProfileIsR003(@TempDir Path dir) throws Exception {
    Path empty = Files.writeString(dir.resolve("empty.json"), "[]");
    GraftException e = assertThrows(GraftException.class, () -> NodePlacement.fromProfile(empty));
    assertEquals(RuntimeErrorCode.FORMAT, e.getErrorCode());
    Path text = Files.writeString(dir.resolve("text.json"), "{\"not\": \"an array\"}");
    assertEquals(RuntimeErrorCode.FORMAT, assertThrows(GraftException.class, () -> NodePlacement.fromProfile(text)).getErrorCode());
  }

  /**
   * On a GPU, with {@code onnxruntime_gpu} on the classpath ({@code -Pcuda}): every compute node
   * of the tiny graft's training and inference graphs runs on CUDA; ONNX Runtime keeps shape
   * arithmetic on the CPU on purpose, so only those ops may be elsewhere. Prints the fallbacks.
   */
  @Test
  @Tag("gpu")
  void onCudaOnlyShapeArithmeticFallsBackToTheCpu(@TempDir Path dir) throws Exception {
    assumeTrue(OrtEnvironment.getAvailableProviders().contains(OrtProvider.CUDA),
        "the ONNX Runtime on the classpath has no CUDA provider (build with -Pcuda)");
    List<Path> traces;
    try {
      traces = profiles(dir, Device.CUDA);
    } catch (GraftException e) {
      assumeTrue(e.getErrorCode() != RuntimeErrorCode.CUDA_LIBRARIES, e.getMessage());
      throw e;
    }
    Set<String> shapeOps = Set.of("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Reshape", "Cast", "Range",
        "ConstantOfShape", "Slice", "Equal", "Where", "Expand", "ReduceMax", "Size");
    for (Path trace : traces) {
      NodePlacement p = NodePlacement.fromProfile(trace);
      System.out.println(trace.getFileName() + ": " + p.countByProvider() + "; not on CUDA: " + p.notOn(NodePlacement.CUDA));
      p.nodes().forEach((node, placed) -> assertTrue(placed.provider().equals(NodePlacement.CUDA)
          || shapeOps.contains(placed.op()), node + " (" + placed.op() + ") ran on " + placed.provider()));
      assertTrue(p.countByProvider().getOrDefault(NodePlacement.CUDA, 0) > 0, trace.toString());
    }
  }

  private static List<Path> profiles(Path dir, Device device) throws Exception {
    Path profiles = Files.createDirectory(dir.resolve("profiles"));
    try (AdapterModel model = AdapterModel.open(TinyGraphs.graphs(),
        ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)).withDevice(device).withProfiling(profiles))) {
      model.trainStep(batch(), new long[] {0, 1}, 0.1f);
      model.predict(batch());
    }
    try (Stream<Path> files = Files.list(profiles)) {
      return files.sorted().toList();
    }
  }
}
