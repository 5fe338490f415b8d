package dev.graft.spark;

import java.nio.file.Path;
import java.util.List;

/**
 * What a data-parallel run did: the loss per step (the mean over every replica's batch, weighted by
 * examples), each replica's parameter checksum after each step, the segments with their checkpoints
 * and how often each was run, the final parameters (laid out as {@code
 * AdapterModel.getParameterVector()}) and replica 0's time split.
 *
 * @param computeNanos replica 0's time in gradient, training and apply steps
 * @param reduceNanos replica 0's time in all-reduces (waiting for the slowest replica included)
 * @param reduces the all-reduces replica 0 took part in (one a step when synchronous, plus one per segment to start equal)
 * @param bytesSent bytes replica 0 sent in them
 */
public record DataParallelResult(int replicas, int batchSize, int averageEvery, float[] losses, long[][] checksums,
    List<Segment> segments, float[] parameters, long computeNanos, long reduceNanos, long reduces, long bytesSent) {
  /**
   * A segment of steps {@code [from, to)}, run {@code attempts} times (1: never rerun), its
   * checkpoint written by the driver.
   */
  public record Segment(long from, long to, int attempts, Path checkpoint) {}

  /** The last checkpoint written. */
  public Path lastCheckpoint() {
    return segments.get(segments.size() - 1).checkpoint();
  }

  /** The share of replica 0's step time spent in all-reduces. */
  public double allReduceShare() {
    return (double) reduceNanos / (computeNanos + reduceNanos);
  }
}
