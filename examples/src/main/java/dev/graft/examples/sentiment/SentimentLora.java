package dev.graft.examples.sentiment;

import dev.graft.annotations.Classification;
import dev.graft.annotations.Graft;
import dev.graft.annotations.Lora;

/**
 * LoRA (rank 8, alpha 16) on the query and value projections of every layer of
 * all-MiniLM-L6-v2, plus a 2-class head over mean-pooled token states. The Graft processor
 * compiles this at {@code javac} time into {@code SentimentLoraGraft} and its ONNX resources.
 */
@Graft(host = "all-minilm-l6-v2.onnx")
@Lora(target = ".*/attention/self/(query|value)/MatMul", rank = 8, alpha = 16)
@Classification(labels = 2)
public interface SentimentLora {}
