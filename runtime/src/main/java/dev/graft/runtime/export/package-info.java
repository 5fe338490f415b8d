/**
 * Graft runtime: deployable ONNX exports of a graft, merged ({@link dev.graft.runtime.export.MergedExport})
 * and unmerged, with every weight as external data beside the model.
 */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.export;
