package dev.graft.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** The adapter model's lifecycle under concurrency: close during runs, concurrent predicts and training steps. */
class SessionLifecycleTest {
  private static final int CHILDREN = 4;
  private static final int ROUNDS = 5;

  @TempDir Path dir;

  private AdapterModel open() throws IOException {
    return AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(TinyGraphs.writeHost(dir)));
  }

  @Test
  void finding2_closeWhilePredictingDoesNotCrash() throws Exception {
    raceInChildren("predict");
  }

  @Test
  void finding2_closeWhileTrainingDoesNotCrash() throws Exception {
    raceInChildren("train");
  }

  /** {@link CloseRaceMain} in child JVMs, {@code CHILDREN * ROUNDS} closes in all: each child must exit 0. */
  private static void raceInChildren(String mode) throws Exception {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    for (int child = 0; child < CHILDREN; child++) {
      Process p = new ProcessBuilder(
              java, "-Xmx256m", "-XX:ErrorFile=" + Path.of(System.getProperty("java.io.tmpdir"), "graft_hs_err_%p.log"),
              "-cp", System.getProperty("java.class.path"),
              CloseRaceMain.class.getName(), mode, String.valueOf(ROUNDS))
          .redirectErrorStream(true)
          .start();
      String output;
      try (var in = p.getInputStream()) {
        output = new String(in.readAllBytes(), StandardCharsets.UTF_8);
      }
      assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child did not finish");
      assertEquals(0, p.exitValue(), "child " + child + " (" + mode + ") exited " + p.exitValue() + ":\n" + output);
      assertTrue(output.contains("rounds=" + ROUNDS), output);
    }
  }

  @Test
  void concurrentPredictsGiveTheSequentialLogits() throws Exception {
    try (AdapterModel model = open()) {
      model.setParameter("p", new float[] {0.25f, -1.5f});
      List<Map<String, long[][]>> batches = new ArrayList<>();
      List<float[][]> expected = new ArrayList<>();
      for (int b = 0; b < 8; b++) {
        Map<String, long[][]> batch = CloseRaceMain.batch(4 + b, 16 + 8 * b);
        batches.add(batch);
        expected.add(model.predict(batch));
      }
      List<Callable<Void>> tasks = new ArrayList<>();
      CountDownLatch start = new CountDownLatch(1);
      for (int t = 0; t < 8; t++) {
        int first = t;
        tasks.add(() -> {
          start.await();
          for (int i = 0; i < 200; i++) {
            int b = (first + i) % batches.size();
            float[][] got = model.predict(batches.get(b));
            for (int row = 0; row < got.length; row++) {
              assertArrayEquals(expected.get(b)[row], got[row], 0f, "batch " + b + " row " + row);
            }
          }
          return null;
        });
      }
      runAll(tasks, start);
      assertEquals(4, expected.get(0).length);
      assertEquals(TinyGraphs.HOST_W * sumOfIds(batches.get(0), 0) + 0.25f, expected.get(0)[0][0], 1e-2f);
    }
  }

  @Test
  void concurrentTrainStepsGiveTheSequentialState() throws Exception {
    int threads = 4;
    int stepsEach = 50;
    Map<String, long[][]> batch = CloseRaceMain.batch(2, 4);
    long[] labels = {0, 1};
    float[] start = {1f, -2f};
    float[] expectedP;
    float[] expectedM;
    float[] expectedV;
    try (AdapterModel sequential = open()) {
      sequential.setParameter("p", start);
      for (int i = 0; i < threads * stepsEach; i++) {
        sequential.trainStep(batch, labels, 1e-3f);
      }
      expectedP = sequential.getParameter("p");
      expectedM = sequential.optimizerState("p", false);
      expectedV = sequential.optimizerState("p", true);
    }
    // adam_v accumulates the step numbers: 1 + 2 + ... + 200 on each element.
    assertArrayEquals(new float[] {20100f, 20100f}, expectedV, 0f);
    try (AdapterModel model = open()) {
      model.setParameter("p", start);
      CountDownLatch go = new CountDownLatch(1);
      List<Callable<Void>> tasks = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        tasks.add(() -> {
          go.await();
          for (int i = 0; i < stepsEach; i++) {
            model.trainStep(batch, labels, 1e-3f);
          }
          return null;
        });
      }
      runAll(tasks, go);
      assertEquals(threads * stepsEach, model.getStep());
      assertArrayEquals(expectedP, model.getParameter("p"), 0f);
      assertArrayEquals(expectedM, model.optimizerState("p", false), 0f);
      assertArrayEquals(expectedV, model.optimizerState("p", true), 0f);
    }
  }

  @Test
  void closedModelFailsEveryCallWithClosedAndClosingAgainIsHarmless() throws Exception {
    AdapterModel model = open();
    Map<String, long[][]> batch = CloseRaceMain.batch(2, 4);
    model.close();
    model.close();
    List<Executable> calls = List.of(
        () -> model.predict(batch),
        () -> model.trainStep(batch, new long[] {0, 1}, 1e-3f),
        () -> model.getParameter("p"),
        () -> model.setParameter("p", new float[] {1f, 2f}),
        () -> model.getParameterValues(),
        () -> model.getStep(),
        () -> model.activateAll(),
        () -> model.activeAdapters(),
        () -> model.initialize(),
        () -> model.resetOptimizer(),
        () -> model.saveAdapter(dir.resolve("adapter")),
        () -> model.loadAdapter(dir.resolve("adapter")),
        () -> model.saveCheckpoint(dir.resolve("state.safetensors")),
        () -> model.loadCheckpoint(dir.resolve("state.safetensors")));
    for (Executable call : calls) {
      GraftException e = assertThrows(GraftException.class, call);
      assertEquals(RuntimeErrorCode.CLOSED.code(), e.getCode(), e.getMessage());
    }
    assertEquals(2, model.getParameterCount());
    assertTrue(model.isTrainable());
  }

  private static float sumOfIds(Map<String, long[][]> batch, int row) {
    float sum = 0;
    for (long id : batch.get("input_ids")[row]) {
      sum += id;
    }
    return sum;
  }

  private static void runAll(List<Callable<Void>> tasks, CountDownLatch start) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
    try {
      List<Future<Void>> futures = new ArrayList<>();
      for (Callable<Void> task : tasks) {
        futures.add(pool.submit(task));
      }
      start.countDown();
      for (Future<Void> f : futures) {
        f.get(60, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
