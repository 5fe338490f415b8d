/**
 * Graft on Apache Spark: batch scoring of compiled grafts over DataFrames, and data-parallel adapter
 * training in a barrier stage. Depends on {@code graft-runtime} only; Spark is a provided dependency.
 */
@NullMarked
package dev.graft.spark;

import org.jspecify.annotations.NullMarked;
