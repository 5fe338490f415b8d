package dev.graft.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.GraphVariant;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.testing.TinyBertHost;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Data-parallel training in {@code local-cluster[2,1,1024]} (two executor JVMs): synchronous
 * training against the same steps taken in one process on the union of the replicas' batches,
 * replicas identical after every step, K-step averaging's loss curve beside it, a replica's
 * executor killed mid-segment and the segment rerun from the driver's checkpoint.
 */
class DataParallelTrainerTest {
  private static final int ROWS = 48;
  private static final int LENGTH = 6;
  private static final int BATCH = 4;
  private static final int STEPS = 12;
  private static final float RATE = 0.02f;

  private static Path dir;
  private static Path host;
  private static List<long[]> rows;
  private static DataParallelResult synchronous;

  @BeforeAll
  static void compile() throws Exception {
    dir = Files.createTempDirectory(Path.of("target").toAbsolutePath(), "dp-");
    host = dir.resolve("tiny.onnx");
    Files.write(host, OnnxExport.write(TinyBertHost.graph(7), "tiny").toByteArray());
    Graft.host(host).name("Dp").lora("", l -> l.rank(4)).classification(2).compile(GraphVariant.GRADIENT)
        .writeTo(dir.resolve("graft"));
    Random r = new Random(1);
    rows = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      long[] row = new long[LENGTH + 1];
      for (int t = 0; t < LENGTH; t++) {
        row[t] = r.nextInt(50);
      }
      row[LENGTH] = row[0] < 25 ? 0 : 1;
      rows.add(row);
    }
    synchronous = trainer(1, "sync", null, 3).fit(data(), DataParallelTrainerTest::example);
  }

  static Example example(long[] row) {
    Map<String, long[]> f = new LinkedHashMap<>();
    f.put("input_ids", java.util.Arrays.copyOf(row, LENGTH));
    f.put("attention_mask", new long[] {1, 1, 1, 1, 1, 1});
    f.put("token_type_ids", new long[LENGTH]);
    return new Example(f, row[LENGTH]);
  }

  private static ReplicaSource source() {
    return ReplicaSource.directory(dir.resolve("graft"), "Dp").withHost(host).withIntraOpThreads(1);
  }

  private static DataParallelTrainer trainer(int averageEvery, String name, ReplicaListener listener, int attempts) {
    DataParallelTrainer.Builder b = DataParallelTrainer.builder(source(), dir.resolve("checkpoints-" + name))
        .batchSize(BATCH).steps(STEPS).learningRate(RATE).averageEvery(averageEvery)
        .checkpointEvery(averageEvery == 1 ? 4 : 6).timeoutMs(60_000).maxAttempts(attempts);
    if (listener != null) {
      b.listener(listener);
    }
    return b.build();
  }

  private static JavaRDD<long[]> data() {
    JavaSparkContext context = JavaSparkContext.fromSparkContext(LocalCluster.session().sparkContext());
    return context.parallelize(rows, LocalCluster.EXECUTORS);
  }

  /** The replicas' partitions as parallelize cuts them: halves in order. */
  private static List<List<Example>> partitions() {
    List<Example> all = rows.stream().map(DataParallelTrainerTest::example).toList();
    return List.of(all.subList(0, ROWS / 2), all.subList(ROWS / 2, ROWS));
  }

  private static AdapterModel local() {
    return AdapterModel.open(AdapterGraphs.fromDirectory(dir.resolve("graft"), "Dp"),
        ModelOptions.defaults().withHost(host));
  }

  /** The same steps in this process: each step on replica 0's batch then replica 1's, as one batch. */
  private static float[][] singleProcess() {
    try (AdapterModel model = local()) {
      float[] losses = new float[STEPS];
      for (int s = 0; s < STEPS; s++) {
        List<Example> batch = new ArrayList<>();
        for (List<Example> p : partitions()) {
          batch.addAll(DataParallelTrainer.batchOf(p, BATCH, s));
        }
        losses[s] = model.trainStep(Batch.of(batch), RATE);
      }
      return new float[][] {losses, model.getParameterVector()};
    }
  }

  /** Mean loss over every example at parameters {@code v}. */
  private static float evaluate(float[] v) {
    try (AdapterModel model = local()) {
      model.setParameterVector(v);
      return model.computeGradients(Batch.of(rows.stream().map(DataParallelTrainerTest::example).toList())).loss();
    }
  }

  @Test
  void synchronousTrainingIsTheSingleProcessTraining() throws Exception {
    float[][] single = singleProcess();
    for (int s = 0; s < STEPS; s++) {
      float relative = Math.abs(synchronous.losses()[s] - single[0][s]) / single[0][s];
      assertTrue(relative < 0.01f, "step " + s + ": " + synchronous.losses()[s] + " vs " + single[0][s]);
      long[] sums = synchronous.checksums()[s];
      assertEquals(sums[0], sums[1], "replicas' parameters identical after step " + s);
    }
    float worst = 0;
    for (int i = 0; i < single[1].length; i++) {
      worst = Math.max(worst, Math.abs(single[1][i] - synchronous.parameters()[i]));
    }
    assertTrue(worst < 1e-4f, "largest parameter difference from the single process: " + worst);
    float dp = evaluate(synchronous.parameters());
    float one = evaluate(single[1]);
    assertTrue(Math.abs(dp - one) / one < 0.01f, "final loss " + dp + " vs single process " + one);
    assertEquals(List.of(4L, 8L, 12L), synchronous.segments().stream().map(DataParallelResult.Segment::to).toList());
    assertTrue(synchronous.segments().stream().allMatch(g -> g.attempts() == 1 && Files.isRegularFile(g.checkpoint())));
    // The driver's last checkpoint is the final state.
    try (AdapterModel model = local()) {
      model.loadCheckpoint(synchronous.lastCheckpoint());
      assertEquals(STEPS, model.getStep());
      assertArrayEquals(synchronous.parameters(), model.getParameterVector(), 0f);
    }
    System.out.printf(Locale.ROOT, "synchronous, 2 replicas, tiny host: %d all-reduces, %d bytes sent by replica 0"
        + " (%.0f per all-reduce, payload %d floats), all-reduce share of step time %.1f%%%n", synchronous.reduces(),
        synchronous.bytesSent(), (double) synchronous.bytesSent() / synchronous.reduces(),
        synchronous.parameters().length + 2, 100 * synchronous.allReduceShare());
    // One all-reduce per step plus one per segment to start equal; each sends 2·(n-1)/n of the payload.
    assertEquals(STEPS + 3, synchronous.reduces());
    long payload = (synchronous.parameters().length + 2L) * 4;
    assertTrue(synchronous.bytesSent() >= STEPS * payload, synchronous.bytesSent() + " bytes");
  }

  @Test
  void kStepAveragingBesideSynchronousTraining() {
    DataParallelResult local = trainer(3, "k3", null, 3).fit(data(), DataParallelTrainerTest::example);
    float[][] single = singleProcess();
    StringBuilder curve = new StringBuilder("step  single  synchronous  k=3\n");
    for (int s = 0; s < STEPS; s++) {
      curve.append(String.format(Locale.ROOT, "%4d  %.4f  %.4f       %.4f%n", s, single[0][s], synchronous.losses()[s],
          local.losses()[s]));
      if ((s + 1) % 3 == 0) {
        long[] sums = local.checksums()[s];
        assertEquals(sums[0], sums[1], "replicas equal after averaging at step " + s);
      }
    }
    System.out.println(curve);
    // Between averagings the replicas differ: each trained on its own batches.
    assertTrue(local.checksums()[0][0] != local.checksums()[0][1]);
    assertEquals(STEPS / 3 + 2, local.reduces());
    float start = evaluate(initial());
    float k = evaluate(local.parameters());
    float sync = evaluate(synchronous.parameters());
    System.out.printf(Locale.ROOT, "mean loss over all examples: initial %.4f, synchronous %.4f, k=3 %.4f%n", start,
        sync, k);
    assertTrue(k < start, "K-step averaging lowers the loss: " + k + " from " + start);
  }

  private static float[] initial() {
    try (AdapterModel model = local()) {
      return model.getParameterVector();
    }
  }

  @Test
  void aKilledReplicaResumesFromTheCheckpoint() {
    // Replica 1's executor dies before step 6 on the segment's first run (steps 4..7).
    ReplicaListener kill = (replica, step, attempt) -> {
      if (replica == 1 && step == 6 && attempt == 0) {
        Runtime.getRuntime().halt(3);
      }
    };
    DataParallelResult resumed = trainer(1, "killed", kill, 3).fit(data(), DataParallelTrainerTest::example);
    List<Integer> attempts = resumed.segments().stream().map(DataParallelResult.Segment::attempts).toList();
    assertEquals(1, attempts.get(0));
    assertTrue(attempts.get(1) >= 2, "the segment with the killed replica was rerun: " + attempts);
    assertEquals(1, attempts.get(2));
    // Rerun from the checkpoint at step 4: the same run, bit for bit.
    assertArrayEquals(synchronous.losses(), resumed.losses(), 0f);
    assertArrayEquals(synchronous.parameters(), resumed.parameters(), 0f);
  }

  @Test
  void aSegmentThatKeepsFailingIsACodedError() {
    ReplicaListener fail = (replica, step, attempt) -> {
      if (replica == 0 && step == 1) {
        throw new IllegalStateException("replica 0 refuses step 1");
      }
    };
    DataParallelTrainer t = DataParallelTrainer.builder(source(), dir.resolve("checkpoints-failing"))
        .batchSize(BATCH).steps(2).checkpointEvery(2).maxAttempts(1).timeoutMs(20_000).listener(fail).build();
    GraftException e = assertThrows(GraftException.class, () -> t.fit(data(), DataParallelTrainerTest::example));
    assertEquals("GRAFT-R162", e.getCode());
    // The last failure is the stage's: the refusing replica's, or its peer's lost connection (GRAFT-R161).
    assertTrue(e.getMessage().contains("steps 0..1 failed 1 times, each resumed from the checkpoint at step 0")
        && e.getCause() != null, e.getMessage());
  }

  @Test
  void badOptionsAreRefusedTogether() {
    GraftException e = assertThrows(GraftException.class, () -> DataParallelTrainer.builder(source(), dir)
        .batchSize(0).averageEvery(4).checkpointEvery(6).build());
    assertEquals("GRAFT-R007", e.getCode());
    assertTrue(e.getMessage().contains("batchSize must be >= 1, got 0")
        && e.getMessage().contains("multiple of averageEvery (4), got 6"), e.getMessage());
  }
}
