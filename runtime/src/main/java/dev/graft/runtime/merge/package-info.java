/**
 * Graft runtime: merging adapters. One registry of merge methods ({@link
 * dev.graft.runtime.merge.MergeMethods}); each combines the weight updates ({@link
 * dev.graft.runtime.merge.SiteDelta}, the full {@code ΔW} of a linear site) of several inputs
 * ({@link dev.graft.runtime.merge.AdapterDelta}) into one {@link dev.graft.runtime.merge.MergeResult},
 * built with {@link dev.graft.runtime.merge.Merge}. See docs/merging.md.
 */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.merge;
