package dev.graft.spark;

import java.io.Serializable;

/**
 * Called on each replica (on its executor) before each of its steps: progress, logging, or a test
 * that fails a replica at a chosen step. Serializable: it travels with the tasks.
 */
@FunctionalInterface
public interface ReplicaListener extends Serializable {
  /**
   * @param replica the replica's index (its partition)
   * @param step the 0-based step about to run
   * @param attempt 0 on a segment's first run, more on every rerun (by Spark or by the trainer)
   */
  void beforeStep(int replica, long step, int attempt);
}
