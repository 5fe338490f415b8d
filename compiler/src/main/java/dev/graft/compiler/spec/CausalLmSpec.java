package dev.graft.compiler.spec;

import org.jspecify.annotations.Nullable;

/**
 * The causal language-model loss on a host output of vocabulary logits {@code [batch, sequence,
 * vocab]}: position t predicts token t+1 (labels shifted inside the graph); no head parameters.
 *
 * @param hostOutput the logits output; empty for the host's first output
 * @param ignoreIndex next-token labels equal to it contribute nothing
 * @param labelSmoothing ε in [0, 1), as for {@link ClassificationSpec}
 */
public record CausalLmSpec(String hostOutput, long ignoreIndex, double labelSmoothing, @Nullable Object source)
    implements TaskSpec {}
