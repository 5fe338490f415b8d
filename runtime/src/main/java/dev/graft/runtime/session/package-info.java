/** Graft runtime: ONNX Runtime sessions, execution providers and the host's frozen weights. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.session;
