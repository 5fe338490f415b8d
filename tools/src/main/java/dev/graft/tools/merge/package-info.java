/** Graft tools: the merge command line ({@link dev.graft.tools.merge.MergeCommand}). */
@org.jspecify.annotations.NullMarked
package dev.graft.tools.merge;
