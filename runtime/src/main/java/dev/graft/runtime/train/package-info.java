/** Graft runtime: the training loop, its learning-rate schedules, results and listeners (progress, checkpoints). */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.train;
