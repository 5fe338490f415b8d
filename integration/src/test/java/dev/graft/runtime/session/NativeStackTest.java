package dev.graft.runtime.session;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.HostModel;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TinyGraphs;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * {@link NativeStack}: what the set-up throws reaches the caller unchanged, nested calls stay on the
 * set-up thread, and a graft opened from a 256 KiB-stack thread gives the results it gives on the test thread. Whether
 * it prevents the executor crash it exists for is shown by the spark module's local-cluster tests
 * (`GraftScorerTest`, `DataParallelTrainerTest`): with {@code NativeStack} bypassed their executors
 * die with exit code 139.
 */
class NativeStackTest {
  private static final long SMALL_STACK = 256 << 10;

  private static Map<String, long[][]> inputs() {
    Map<String, long[][]> m = new LinkedHashMap<>();
    m.put("input_ids", new long[][] {{101, 2023, 3185, 102}, {101, 6659, 999, 102}});
    m.put("attention_mask", new long[][] {{1, 1, 1, 1}, {1, 1, 1, 1}});
    m.put("token_type_ids", new long[2][4]);
    return m;
  }

  private static float[][] openTrainPredict(CompiledGraft graft) {
    try (AdapterModel model = AdapterModel.open(Graft.graphs(graft), ModelOptions.defaults().withSeed(3))) {
      model.trainStep(inputs(), new long[] {1, 0}, 1e-2f);
      return model.predict(inputs());
    }
  }

  private static <T> T onSmallStack(java.util.function.Supplier<T> body) throws InterruptedException {
    AtomicReference<T> result = new AtomicReference<>();
    AtomicReference<Throwable> failure = new AtomicReference<>();
    Thread t = new Thread(null, () -> {
      try {
        result.set(body.get());
      } catch (Throwable e) {
        failure.set(e);
      }
    }, "small-stack", SMALL_STACK);
    t.start();
    t.join();
    if (failure.get() != null) {
      throw new AssertionError("on the small stack", failure.get());
    }
    return result.get();
  }

  @Test
  void aGraftOpensTrainsAndPredictsTheSameFromASmallStackThread() throws Exception {
    HostModel host;
    try (InputStream in = getClass().getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
      host = HostModel.read(in, "all-minilm-l6-v2.onnx");
    }
    CompiledGraft graft = Graft.host(host).name("Small").lora(".*/(query|value)/MatMul", o -> o.setRank(4))
        .classification(2).compile();
    float[][] here = openTrainPredict(graft);
    float[][] small = onSmallStack(() -> openTrainPredict(graft));
    for (int i = 0; i < here.length; i++) {
      assertArrayEquals(here[i], small[i], 0f, "row " + i);
    }
  }

  @Test
  void whatTheSetUpThrowsIsThrownUnchanged() throws IOException {
    IllegalStateException thrown = new IllegalStateException("from the set-up");
    IllegalStateException e = assertThrows(IllegalStateException.class, () -> NativeStack.call("testing", () -> {
      throw thrown;
    }));
    assertSame(thrown, e);
    IOException checked = assertThrows(IOException.class, () -> NativeStack.<Void, IOException>call("testing", () -> {
      throw new IOException("checked");
    }));
    assertEquals("checked", checked.getMessage());
    assertEquals("graft-native-setup", NativeStack.call("testing", () -> Thread.currentThread().getName()));
    assertEquals("graft-native-setup", NativeStack.call("testing",
        () -> NativeStack.call("nested", () -> Thread.currentThread().getName())), "a nested call stays on the thread");
  }

  @Test
  void aFailedOpenKeepsItsCode() {
    GraftException e = assertThrows(GraftException.class, () -> AdapterModel.open(
        TinyGraphs.graphs(), ModelOptions.defaults().withHost(Path.of("/nonexistent/host.onnx"))));
    assertEquals(RuntimeErrorCode.IO, e.getErrorCode(), e.getMessage());
    assertTrue(e.getMessage().contains("/nonexistent/host.onnx"), e.getMessage());
  }
}
