package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.session.Device;
import dev.graft.runtime.train.Trainer;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** Each run-time error code, triggered for real: the exception carries the code and its message starts with it. */
class RuntimeErrorCodesTest {
  @TempDir Path dir;

  private static GraftException assertCode(RuntimeErrorCode code, String detail, Executable call) {
    GraftException e = assertThrows(GraftException.class, call);
    assertEquals(code, e.getErrorCode());
    assertEquals(code.code(), e.getCode());
    assertTrue(e.getMessage().startsWith("[" + code.code() + "] "), e.getMessage());
    assertTrue(e.getMessage().contains(detail), e.getMessage());
    return e;
  }

  @Test
  void codesAreStableAndDistinct() {
    assertEquals("GRAFT-R001", RuntimeErrorCode.ONNX_RUNTIME.code());
    assertEquals("GRAFT-R008", RuntimeErrorCode.CLOSED.code());
    assertEquals(RuntimeErrorCode.values().length,
        java.util.Arrays.stream(RuntimeErrorCode.values()).map(RuntimeErrorCode::code).distinct().count());
  }

  @Test
  void onnxRuntimeRejectingAGraphIsR001() {
    Manifest m = Manifest.newBuilder().setName("empty").build();
    byte[] noGraph = ModelProto.newBuilder().setIrVersion(8).build().toByteArray();
    GraftException e = assertCode(RuntimeErrorCode.ONNX_RUNTIME, "cannot open the adapter's sessions",
        () -> AdapterModel.open(AdapterGraphs.of(m, noGraph, null), ModelOptions.defaults().withTraining(false)));
    assertTrue(e.getCause() instanceof ai.onnxruntime.OrtException, String.valueOf(e.getCause()));
  }

  @Test
  void aRaggedBatchIsR002() throws Exception {
    try (AdapterModel model =
        AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)))) {
      long[][] ragged = {{1, 2}, {3}};
      GraftException e = assertCode(RuntimeErrorCode.TENSOR_MISMATCH, "row 1 has 1",
          () -> model.predict(Map.of("input_ids", ragged, "attention_mask", ragged)));
      assertTrue(e instanceof TensorMismatchException);
    }
  }

  @Test
  void aMalformedManifestIsR003() {
    GraftException e = assertCode(RuntimeErrorCode.FORMAT, "not a valid Graft manifest",
        () -> AdapterGraphs.parseManifest("broken.manifest.textproto", "name: 'x' parameters {"));
    assertEquals("broken.manifest.textproto", ((FormatException) e).getSource());
  }

  @Test
  void cudaOnTheCpuJarIsR004() throws Exception {
    Path host = TinyGraphs.writeHost(dir);
    GraftException e = assertCode(RuntimeErrorCode.EXECUTION_PROVIDER, "onnxruntime_gpu",
        () -> AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(host).withDevice(Device.CUDA)));
    assertTrue(e instanceof ExecutionProviderException);
  }

  @Test
  void aMissingGraphFolderIsR005() {
    assertCode(RuntimeErrorCode.IO, "cannot read adapter graph tiny",
        () -> AdapterGraphs.fromDirectory(dir.resolve("nowhere"), "tiny"));
  }

  @Test
  void anUnknownParameterIsR006() throws Exception {
    try (AdapterModel model =
        AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)))) {
      assertCode(RuntimeErrorCode.UNKNOWN_NAME, "no parameter named 'q'", () -> model.getParameter("q"));
    }
  }

  @Test
  void anArgumentOutOfRangeIsR007() {
    assertCode(RuntimeErrorCode.ARGUMENT, "batch size must be >= 1, got 0", () -> Trainer.builder().batchSize(0));
  }

  @Test
  void useAfterCloseIsR008() throws Exception {
    AdapterModel model = AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)));
    model.close();
    assertCode(RuntimeErrorCode.CLOSED, "the adapter model is closed", () -> model.getParameter("p"));
  }
}
