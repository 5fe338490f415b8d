/** The sentiment task on Apache Spark: batch scoring (the example) and its benchmark, the data-parallel training benchmark. */
@NullMarked
package dev.graft.examples.spark;

import org.jspecify.annotations.NullMarked;
