package dev.graft.dsl.spec;

import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * One declaration of "which adapters go where on which host, trained how": what the
 * annotations and the builder both produce and the compiler consumes.
 *
 * @param name the name of the compiled graft (the annotated interface's simple name)
 * @param host the host model as the user named it (resource name or path)
 * @param adapters the adapter declarations, in declaration order
 * @param task what is trained on top of the host (classification, regression, multi-label, causal LM)
 * @param source opaque reference to the declaration, for diagnostics only
 */
public record GraftSpec(
    String name,
    String host,
    List<AdapterSpec> adapters,
    TaskSpec task,
    AdamWSpec optimizer,
    @Nullable Object source) {
  public GraftSpec {
    adapters = List.copyOf(adapters);
  }
}
