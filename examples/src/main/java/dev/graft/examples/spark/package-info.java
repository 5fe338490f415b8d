/** Graft on Spark: the data-parallel training benchmark. */
@org.jspecify.annotations.NullMarked
package dev.graft.examples.spark;
