/** Graft runtime: adapter models on ONNX Runtime, the training loop and its errors. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime;
