/**
 * Shared test fixtures (test scope only).
 *
 * <ul>
 *   <li>{@link dev.graft.testing.WholeStepCheck}: a graft's whole training step on a tiny host through ONNX Runtime,
 *       every gradient against central differences; also repeated steps and the inference graph.
 *   <li>{@link dev.graft.testing.Feed}: a value fed to a graph input by name (int64, real, bool).
 *   <li>{@link dev.graft.testing.InferenceRun}: the inference graph on a float64 host, unoptimized, with chosen values.
 *   <li>{@link dev.graft.testing.ProcessorCompiler}: javac with an annotation processor through compile-testing.
 *   <li>{@link dev.graft.testing.Adapters}: adapter declarations in one line.
 *   <li>{@link dev.graft.testing.CustomKinds}: user-defined kinds written with the op DSL.
 *   <li>{@link dev.graft.testing.TinyBertHost}: a 2-layer BERT encoder built with the IR, float32 or float64.
 *   <li>{@link dev.graft.testing.TinyCausalHost}: the tiny BERT with vocabulary logits, for causal-LM losses.
 *   <li>{@link dev.graft.testing.TinyCnnHost}: a tiny CNN (Conv, BatchNormalization, pools, Gemm) on 8x8 images.
 *   <li>{@link dev.graft.testing.TinyDecoderHost}: what the tiny decoders share.
 *   <li>{@link dev.graft.testing.TinyGpt2Host}: a 2-layer GPT-2 decoder as torch exports it.
 *   <li>{@link dev.graft.testing.TinyLlamaHost}: a 2-layer Llama decoder (rotary embeddings, RMSNorm, SwiGLU).
 *   <li>{@link dev.graft.testing.MiniLmHost}: the real all-MiniLM-L6-v2, read once per JVM.
 * </ul>
 */
@org.jspecify.annotations.NullMarked
package dev.graft.testing;
