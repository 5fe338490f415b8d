package dev.graft.spark;

import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.state.ParameterState;
import dev.graft.runtime.train.Gradients;
import dev.graft.spark.allreduce.RingAllReduce;
import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.zip.CRC32;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.jspecify.annotations.Nullable;
import scala.reflect.ClassTag;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

/**
 * Data-parallel training of a compiled graft on Spark: one replica per partition of the examples,
 * all running together in a barrier stage. The graft must be compiled with {@code
 * GraphVariant.GRADIENT} (its gradient and apply graphs).
 *
 * <p><b>Synchronous</b> ({@link Builder#averageEvery averageEvery(1)}, the default): per step each
 * replica computes the gradient of its batch's mean loss, the replicas all-reduce their gradients
 * weighted by their examples ({@link Gradients#weighted()}) and each applies the same average with
 * the training step's AdamW update, so the replicas stay bit-identical and the step is the step on
 * the union of their batches. <b>K-step averaging</b> ({@code averageEvery(k)}, k > 1; local SGD):
 * each replica takes ordinary training steps on its own batches and every k steps (and at every
 * checkpoint) the replicas average their parameters; AdamW moments stay each replica's own.
 *
 * <p>The all-reduce is {@link RingAllReduce}, a side channel of TCP connections between the tasks
 * (addresses exchanged with {@link BarrierTaskContext#allGather}); each replica sends about twice
 * the payload per all-reduce, whatever the number of replicas.
 *
 * <p><b>Checkpoints from the driver.</b> Training runs in segments of {@link Builder#checkpointEvery}
 * steps, one barrier stage each: at a segment's end replica 0 returns the training state
 * (parameters, moments, step) to the driver, which writes it to {@link Builder#checkpointDir} and
 * starts the next segment from it. A segment that fails (a task or an executor lost) is rerun from
 * its starting checkpoint, by Spark's own retry of barrier stages and then by the trainer, up to
 * {@link Builder#maxAttempts} times ({@code GRAFT-R162} after that). Under synchronous training a
 * rerun is bit-identical to an uninterrupted run.
 *
 * <p>Each replica reads its whole partition into memory, cycles through it in order ({@code
 * batchSize} examples a step, the step's batch a function of the step alone, so a rerun reads the
 * same batches) and opens the graft once per segment.
 */
public final class DataParallelTrainer implements Serializable {
  private static final long serialVersionUID = 1L;

  private final ReplicaSource source;
  private final int batchSize;
  private final long steps;
  private final float learningRate;
  private final int averageEvery;
  private final int checkpointEvery;
  private final String checkpointDir;
  private final int maxAttempts;
  private final int timeoutMs;
  private final @Nullable ReplicaListener listener;

  private DataParallelTrainer(Builder b) {
    this.source = b.source;
    this.batchSize = b.batchSize;
    this.steps = b.steps;
    this.learningRate = b.learningRate;
    this.averageEvery = b.averageEvery;
    this.checkpointEvery = b.checkpointEvery;
    this.checkpointDir = b.checkpointDir.toAbsolutePath().toString();
    this.maxAttempts = b.maxAttempts;
    this.timeoutMs = b.timeoutMs;
    this.listener = b.listener;
  }

  public static Builder builder(ReplicaSource source, Path checkpointDir) {
    return new Builder(source, checkpointDir);
  }

  /** Options of a data-parallel run; every value is checked by {@link #build()}. */
  public static final class Builder {
    private final ReplicaSource source;
    private final Path checkpointDir;
    private int batchSize = 16;
    private long steps = 100;
    private float learningRate = 1e-3f;
    private int averageEvery = 1;
    private int checkpointEvery = 50;
    private int maxAttempts = 3;
    private int timeoutMs = 120_000;
    private @Nullable ReplicaListener listener;

    private Builder(ReplicaSource source, Path checkpointDir) {
      this.source = source;
      this.checkpointDir = checkpointDir;
    }

    /** Examples per replica per step (the global batch is this times the replicas). */
    public Builder batchSize(int value) {
      batchSize = value;
      return this;
    }

    public Builder steps(long value) {
      steps = value;
      return this;
    }

    public Builder learningRate(float value) {
      learningRate = value;
      return this;
    }

    /** 1: synchronous gradient all-reduce every step; k > 1: parameter averaging every k steps. */
    public Builder averageEvery(int value) {
      averageEvery = value;
      return this;
    }

    /** Steps per segment: the driver writes a checkpoint after each (a multiple of averageEvery). */
    public Builder checkpointEvery(int value) {
      checkpointEvery = value;
      return this;
    }

    /** How often a segment is run before the trainer gives up ({@code GRAFT-R162}). */
    public Builder maxAttempts(int value) {
      maxAttempts = value;
      return this;
    }

    /** How long a replica waits for a peer's connection or frame, ms. */
    public Builder timeoutMs(int value) {
      timeoutMs = value;
      return this;
    }

    public Builder listener(ReplicaListener value) {
      listener = value;
      return this;
    }

    public DataParallelTrainer build() {
      List<String> wrong = new ArrayList<>();
      if (batchSize < 1) {
        wrong.add("batchSize must be >= 1, got " + batchSize);
      }
      if (steps < 1) {
        wrong.add("steps must be >= 1, got " + steps);
      }
      try {
        ParameterState.checkLearningRate(learningRate);
      } catch (GraftException e) {
        wrong.add(e.getMessage());
      }
      if (averageEvery < 1) {
        wrong.add("averageEvery must be >= 1, got " + averageEvery);
      }
      if (checkpointEvery < 1 || checkpointEvery % Math.max(1, averageEvery) != 0) {
        wrong.add("checkpointEvery must be a positive multiple of averageEvery (" + averageEvery + "), got "
            + checkpointEvery);
      }
      if (maxAttempts < 1 || timeoutMs < 1) {
        wrong.add("maxAttempts and timeoutMs must be >= 1, got " + maxAttempts + " and " + timeoutMs);
      }
      if (!wrong.isEmpty()) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, String.join("; ", wrong));
      }
      return new DataParallelTrainer(this);
    }
  }

  /**
   * Trains on a data frame whose columns {@code inputColumns} hold each host input's tokens (arrays
   * of longs, one column per host input, named as the inputs) and {@code labelColumn} the class
   * label (a long); one replica per partition.
   */
  public DataParallelResult fit(Dataset<Row> frame, List<String> inputColumns, String labelColumn) {
    List<String> columns = List.copyOf(inputColumns);
    return fit(frame.javaRDD(), (ExampleFunction<Row>) row -> {
      java.util.Map<String, long[]> features = new java.util.LinkedHashMap<>();
      for (String c : columns) {
        List<Object> values = row.getList(row.fieldIndex(c));
        long[] v = new long[values.size()];
        for (int i = 0; i < v.length; i++) {
          v[i] = ((Number) values.get(i)).longValue();
        }
        features.put(c, v);
      }
      return new Example(features, ((Number) row.get(row.fieldIndex(labelColumn))).longValue());
    });
  }

  /** Trains on {@code rows}, one replica per partition, each element made an example by {@code toExample}. */
  public <T> DataParallelResult fit(JavaRDD<T> rows, ExampleFunction<T> toExample) {
    int replicas = rows.getNumPartitions();
    Path dir = Path.of(checkpointDir);
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot create the checkpoint folder " + dir + ": " + e, e);
    }
    SecureRandom tokens = new SecureRandom();
    float[] losses = new float[(int) steps];
    long[][] checksums = new long[(int) steps][];
    List<DataParallelResult.Segment> segments = new ArrayList<>();
    byte @Nullable [] checkpoint = null;
    float[] parameters = new float[0];
    long computeNanos = 0;
    long reduceNanos = 0;
    long reduces = 0;
    long bytes = 0;
    for (long start = 0; start < steps; start += checkpointEvery) {
      long end = Math.min(steps, start + checkpointEvery);
      List<ReplicaReport> reports = null;
      Exception last = null;
      int attempts = 0;
      while (reports == null) {
        if (attempts == maxAttempts) {
          throw new GraftException(RuntimeErrorCode.TRAINING_STAGE_FAILED,
              "the data-parallel segment of steps " + start + ".." + (end - 1) + " failed " + attempts
                  + " times, each resumed from the checkpoint at step " + start + "; last failure: "
                  + (last == null ? "none" : last.getMessage()), last);
        }
        Segment task = new Segment(this, start, end, checkpoint, tokens.nextLong(), attempts, toExample);
        try {
          reports = run(rows.rdd(), task, replicas);
        } catch (Exception e) {
          // A lost task or executor fails the whole barrier stage (Spark does not rerun barrier
          // result stages): rerun the segment from its checkpoint.
          last = e;
        }
        attempts++;
      }
      reports.sort(Comparator.comparingInt(ReplicaReport::replica));
      ReplicaReport first = reports.get(0);
      for (int s = 0; s < end - start; s++) {
        double loss = 0;
        long examples = 0;
        long[] sums = new long[replicas];
        for (ReplicaReport r : reports) {
          loss += (double) r.losses()[s] * r.examples()[s];
          examples += r.examples()[s];
          sums[r.replica()] = r.checksums()[s];
        }
        losses[(int) (start + s)] = (float) (loss / examples);
        checksums[(int) (start + s)] = sums;
      }
      checkpoint = first.checkpoint();
      Path file = dir.resolve(String.format(Locale.ROOT, "step-%08d.safetensors", end));
      writeAtomically(file, checkpoint);
      int reruns = reports.stream().mapToInt(ReplicaReport::stageAttempt).max().orElse(0);
      segments.add(new DataParallelResult.Segment(start, end, attempts + reruns, file));
      parameters = first.parameters();
      computeNanos += first.computeNanos();
      reduceNanos += first.reduceNanos();
      reduces += first.reduces();
      bytes += first.bytesSent();
    }
    return new DataParallelResult(replicas, batchSize, averageEvery, losses, checksums, List.copyOf(segments),
        parameters, computeNanos, reduceNanos, reduces, bytes);
  }

  private static <T> List<ReplicaReport> run(RDD<T> rows, Segment task, int replicas) {
    ClassTag<ReplicaReport> tag = ClassTag$.MODULE$.apply(ReplicaReport.class);
    RDD<ReplicaReport> reports = rows.barrier().mapPartitions(new OnReplica<>(task), false, tag);
    List<ReplicaReport> out = new ArrayList<>(new JavaRDD<>(reports, tag).collect());
    if (out.size() != replicas) {
      throw new GraftException(RuntimeErrorCode.TRAINING_STAGE_FAILED,
          replicas + " replicas were started but " + out.size() + " reported");
    }
    return out;
  }

  private static void writeAtomically(Path file, byte[] bytes) {
    try {
      Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
      Files.write(tmp, bytes);
      Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot write checkpoint " + file + ": " + e, e);
    }
  }

  /** What one replica reports at the end of a segment (replica 0 adds the state). */
  record ReplicaReport(int replica, int stageAttempt, float[] losses, long[] examples, long[] checksums,
      byte[] checkpoint, float[] parameters, long computeNanos, long reduceNanos, long reduces, long bytesSent)
      implements Serializable {}

  /** One segment's work, as it travels to the executors. */
  private record Segment(DataParallelTrainer trainer, long start, long end, byte @Nullable [] checkpoint,
      long session, int driverAttempt, ExampleFunction<?> toExample) implements Serializable {}

  /** The barrier task: a scala function over the partition's iterator, serializable. */
  private static final class OnReplica<T> extends AbstractFunction1<scala.collection.Iterator<T>,
      scala.collection.Iterator<ReplicaReport>> implements Serializable {
    private static final long serialVersionUID = 1L;
    private final Segment task;

    OnReplica(Segment task) {
      this.task = task;
    }

    @Override
    @SuppressWarnings("unchecked")
    public scala.collection.Iterator<ReplicaReport> apply(scala.collection.Iterator<T> partition) {
      ExampleFunction<T> toExample = (ExampleFunction<T>) task.toExample();
      List<Example> examples = new ArrayList<>();
      Iterator<T> it = scala.jdk.javaapi.CollectionConverters.asJava(partition);
      while (it.hasNext()) {
        examples.add(toExample.apply(it.next()));
      }
      ReplicaReport report = task.trainer().replica(task, examples);
      return scala.jdk.javaapi.CollectionConverters.asScala(List.of(report).iterator());
    }
  }

  /** Runs one replica's part of a segment inside its barrier task. */
  private ReplicaReport replica(Segment task, List<Example> examples) {
    BarrierTaskContext context = BarrierTaskContext.get();
    int rank = context.partitionId();
    int stageAttempt = context.stageAttemptNumber();
    ServerSocket server = RingAllReduce.listen();
    String host = context.getTaskInfos()[rank].address();
    // Every replica must reach allGather, even one without examples, or the others wait forever.
    String[] addresses = context.allGather(host + " " + server.getLocalPort() + " " + examples.size());
    List<InetSocketAddress> peers = new ArrayList<>();
    List<String> empty = new ArrayList<>();
    for (int i = 0; i < addresses.length; i++) {
      String[] parts = addresses[i].split(" ");
      peers.add(new InetSocketAddress(hostOnly(parts[0]), Integer.parseInt(parts[1])));
      if (parts[2].equals("0")) {
        empty.add("replica " + i);
      }
    }
    if (!empty.isEmpty()) {
      closeQuietly(server);
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "partitions without examples: " + empty
          + "; give every replica's partition at least one example");
    }
    return train(task, examples, rank, stageAttempt, peers, server);
  }

  private ReplicaReport train(Segment task, List<Example> examples, int rank, int stageAttempt,
      List<InetSocketAddress> peers, ServerSocket server) {
    int n = (int) (task.end() - task.start());
    float[] losses = new float[n];
    long[] counts = new long[n];
    long[] checksums = new long[n];
    long computeNanos = 0;
    long reduceNanos = 0;
    long reduces = 0;
    long session = task.session() ^ (0x9E3779B97F4A7C15L * (stageAttempt + 1));
    try (RingAllReduce ring = RingAllReduce.connect(rank, peers, server, session, timeoutMs);
        AdapterModel model = source.open()) {
      if (task.checkpoint() != null) {
        load(model, task.checkpoint());
      }
      if (model.getStep() != task.start()) {
        throw new GraftException(RuntimeErrorCode.FORMAT, "the checkpoint is at step " + model.getStep()
            + ", the segment starts at step " + task.start());
      }
      // Replica 0's parameters to all (the others add zeros), so the replicas start equal.
      float[] start = model.getParameterVector();
      if (rank != 0) {
        Arrays.fill(start, 0f);
      }
      ring.allReduce(start);
      reduces++;
      model.setParameterVector(start);
      for (int s = 0; s < n; s++) {
        long step = task.start() + s;
        if (listener != null) {
          listener.beforeStep(rank, step, task.driverAttempt() + stageAttempt);
        }
        Batch batch = batch(examples, step);
        long t0 = System.nanoTime();
        if (averageEvery == 1) {
          Gradients own = model.computeGradients(batch);
          float[] sum = own.weighted();
          long t1 = System.nanoTime();
          ring.allReduce(sum);
          long t2 = System.nanoTime();
          Gradients mean = Gradients.fromWeightedSum(sum);
          model.applyGradients(mean, learningRate);
          computeNanos += (t1 - t0) + (System.nanoTime() - t2);
          reduceNanos += t2 - t1;
          reduces++;
          losses[s] = own.loss();
        } else {
          losses[s] = model.trainStep(batch, learningRate);
          long t1 = System.nanoTime();
          computeNanos += t1 - t0;
          if ((step + 1) % averageEvery == 0 || s == n - 1) {
            float[] v = model.getParameterVector();
            ring.allReduce(v);
            float scale = 1f / ring.size();
            for (int i = 0; i < v.length; i++) {
              v[i] *= scale;
            }
            model.setParameterVector(v);
            reduceNanos += System.nanoTime() - t1;
            reduces++;
          }
        }
        counts[s] = batch.size();
        checksums[s] = checksum(model.getParameterVector());
      }
      byte[] state = rank == 0 ? save(model) : new byte[0];
      float[] parameters = rank == 0 ? model.getParameterVector() : new float[0];
      return new ReplicaReport(rank, stageAttempt, losses, counts, checksums, state, parameters, computeNanos,
          reduceNanos, reduces, ring.bytesSent());
    }
  }

  private Batch batch(List<Example> examples, long step) {
    return Batch.of(batchOf(examples, batchSize, step));
  }

  /**
   * The examples a replica whose partition is {@code partition} trains on at {@code step}: {@code
   * batchSize} of them from {@code step·batchSize} on, cycling through the partition in order.
   */
  public static List<Example> batchOf(List<Example> partition, int batchSize, long step) {
    List<Example> rows = new ArrayList<>(batchSize);
    for (int i = 0; i < batchSize; i++) {
      rows.add(partition.get((int) ((step * batchSize + i) % partition.size())));
    }
    return rows;
  }

  private static String hostOnly(String address) {
    int colon = address.lastIndexOf(':');
    return colon > 0 && address.indexOf(':') == colon ? address.substring(0, colon) : address;
  }

  /** CRC-32 of the values' bits: equal vectors, equal checksums. */
  static long checksum(float[] values) {
    CRC32 crc = new CRC32();
    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(values.length * 4);
    b.asFloatBuffer().put(values);
    crc.update(b.array());
    return crc.getValue();
  }

  private static byte[] save(AdapterModel model) {
    try {
      Path tmp = Files.createTempFile("graft-dp-", ".safetensors");
      try {
        model.saveCheckpoint(tmp);
        return Files.readAllBytes(tmp);
      } finally {
        Files.deleteIfExists(tmp);
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private static void load(AdapterModel model, byte[] checkpoint) {
    try {
      Path tmp = Files.createTempFile("graft-dp-", ".safetensors");
      try {
        Files.write(tmp, checkpoint);
        model.loadCheckpoint(tmp);
      } finally {
        Files.deleteIfExists(tmp);
      }
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot stage the checkpoint on this executor: " + e, e);
    }
  }

  private static void closeQuietly(AutoCloseable c) {
    try {
      c.close();
    } catch (Exception ignored) {
      // after a failure
    }
  }
}
