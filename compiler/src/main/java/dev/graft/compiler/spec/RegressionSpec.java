package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * A regression head over a pooled host output: a linear layer to {@code numTargets} outputs,
 * trained with the mean squared error against float targets {@code [batch, numTargets]}.
 */
public record RegressionSpec(
    int numTargets, ClassificationSpec.Pooling pooling, String hostOutput, @Nullable Object source)
    implements TaskSpec {}
