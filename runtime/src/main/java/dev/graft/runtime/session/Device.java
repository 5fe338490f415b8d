package dev.graft.runtime.session;

/** Where ONNX Runtime executes the graphs. */
public enum Device {
  /** The CPU execution provider, always available. */
  CPU,
  /** The CUDA execution provider; needs the {@code onnxruntime_gpu} artifact instead of {@code onnxruntime}. */
  CUDA
}
