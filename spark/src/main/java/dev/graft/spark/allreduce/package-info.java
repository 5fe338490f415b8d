/** The replicas' side channel for data-parallel training: a ring all-reduce over TCP. */
@org.jspecify.annotations.NullMarked
package dev.graft.spark.allreduce;
