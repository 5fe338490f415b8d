package dev.graft.examples.sentiment;

import dev.graft.annotations.Classification;
import dev.graft.annotations.Graft;
import dev.graft.examples.customkind.GatedLora;

/**
 * A user-defined adapter kind on the sentiment host: gated LoRA (rank 8, alpha 16) on the query
 * and value projections of all-MiniLM-L6-v2, plus a 2-class head. {@code @GatedLora} and its kind
 * come from the {@code graft-examples-custom-kind} jar; the Graft processor finds the kind on its
 * path and compiles this into {@code SentimentGatedLoraGraft} as it does {@link SentimentLora}.
 */
@Graft(host = "all-minilm-l6-v2.onnx")
@GatedLora(rank = 8, alpha = 16)
@Classification(labels = 2)
public interface SentimentGatedLora {}
