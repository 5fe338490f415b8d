package dev.graft.runtime;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Run in a child JVM by {@link SessionLifecycleTest}: opens the tiny model {@code rounds} times,
 * has four threads call {@code predict} or {@code trainStep} (the first argument) in a loop and
 * closes the model while they run. Each call must either complete or fail with {@code CLOSED};
 * exit 0 when every round went so, 3 when a call failed otherwise, 4 when a thread hung; a native
 * crash kills this JVM, not the test's.
 */
public final class CloseRaceMain {
  static final int THREADS = 4;

  private CloseRaceMain() {}

  public static void main(String[] args) throws Exception {
    boolean train = args[0].equals("train");
    int rounds = Integer.parseInt(args[1]);
    Path dir = Files.createTempDirectory("close-race");
    Path host = TinyGraphs.writeHost(dir);
    Map<String, long[][]> batch = batch(32, 256);
    long completed = 0;
    for (int round = 0; round < rounds; round++) {
      AdapterModel model = AdapterModel.open(TinyGraphs.graphs(), ModelOptions.defaults().withHost(host));
      AtomicLong calls = new AtomicLong();
      AtomicReference<Throwable> unexpected = new AtomicReference<>();
      List<Thread> threads = new ArrayList<>();
      for (int t = 0; t < THREADS; t++) {
        Thread thread = new Thread(() -> {
          while (true) {
            try {
              if (train) {
                model.trainStep(batch, new long[32], 1e-3f);
              } else {
                model.predict(batch);
              }
              calls.incrementAndGet();
            } catch (GraftException e) {
              if (!e.getCode().equals(RuntimeErrorCode.CLOSED.code())) {
                unexpected.compareAndSet(null, e);
              }
              return;
            } catch (Throwable e) {
              unexpected.compareAndSet(null, e);
              return;
            }
          }
        });
        threads.add(thread);
        thread.start();
      }
      while (calls.get() < THREADS) {
        Thread.onSpinWait();
      }
      Thread.sleep(ThreadLocalRandom.current().nextInt(5));
      model.close();
      model.close();
      for (Thread thread : threads) {
        thread.join(30_000);
        if (thread.isAlive()) {
          System.err.println("round " + round + ": a thread did not return after close");
          System.exit(4);
        }
      }
      if (unexpected.get() != null) {
        System.err.println("round " + round + ": a call failed otherwise than with CLOSED");
        unexpected.get().printStackTrace();
        System.exit(3);
      }
      completed += calls.get();
    }
    System.out.println("rounds=" + rounds + " calls=" + completed);
    System.exit(0);
  }

  static Map<String, long[][]> batch(int rows, int length) {
    long[][] ids = new long[rows][length];
    long[][] mask = new long[rows][length];
    for (int i = 0; i < rows; i++) {
      for (int j = 0; j < length; j++) {
        ids[i][j] = (i * 31L + j) % 97;
        mask[i][j] = 1;
      }
    }
    return Map.of("input_ids", ids, "attention_mask", mask);
  }
}
