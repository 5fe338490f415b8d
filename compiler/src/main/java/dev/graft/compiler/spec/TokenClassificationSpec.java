package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * Token classification on an encoder's hidden states {@code [batch, sequence, hidden]}: a linear
 * head per token to {@code numLabels} logits {@code [batch, sequence, numLabels]}, softmax
 * cross-entropy against int64 labels {@code [batch, sequence]}, averaged over the tokens whose
 * label is not the ignore index and whose attention mask is 1 (Hugging Face's
 * {@code BertForTokenClassification}).
 *
 * @param numLabels classes per token, at least 2
 * @param hostOutput the hidden states output; empty for the host's first output
 * @param ignoreIndex labels equal to it contribute nothing
 */
public record TokenClassificationSpec(int numLabels, String hostOutput, long ignoreIndex, @Nullable Object source)
    implements TaskSpec {}
