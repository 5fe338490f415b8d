/** Graft runtime: serving exports, e.g. an unmerged export with {@code .onnx_adapter} files through ONNX Runtime. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.serve;
