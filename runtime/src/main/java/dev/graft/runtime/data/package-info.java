/** Graft runtime: labelled data sets, splits and batching. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.data;
