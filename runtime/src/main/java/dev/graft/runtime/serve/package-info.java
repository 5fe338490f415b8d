/**
 * Serving: {@link dev.graft.runtime.serve.AdapterServer} runs many adapters of one graft in mixed
 * batches through its gathered graph, {@link dev.graft.runtime.serve.MicroBatcher} collects
 * concurrent requests into batches, {@link dev.graft.runtime.serve.HttpEndpoint} puts JSON over
 * HTTP in front; {@link dev.graft.runtime.serve.OrtAdapterSession} serves an unmerged export
 * with {@code .onnx_adapter} files through ONNX Runtime's own LoRA support, one adapter per run.
 */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.serve;
