package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * A multi-label classification head over a pooled host output: a linear layer to {@code
 * numLabels} independent logits, trained with binary cross-entropy with logits against float 0/1
 * targets {@code [batch, numLabels]}.
 */
public record MultiLabelSpec(
    int numLabels, ClassificationSpec.Pooling pooling, String hostOutput, @Nullable Object source)
    implements TaskSpec {}
