package dev.graft.compiler.spec;

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
 * @param compositions the composition blocks of named adapters, in declaration order
 * @param train the named adapters the training step updates; empty: every one (unnamed adapters
 *     and the head always train)
 * @param int8Backward how the backward pass goes through the host's int8 linear layers
 */
public record GraftSpec(
    String name,
    String host,
    List<AdapterSpec> adapters,
    TaskSpec task,
    AdamWSpec optimizer,
    @Nullable Object source,
    List<Composition> compositions,
    List<String> train,
    Int8Backward int8Backward) {
  public GraftSpec {
    adapters = List.copyOf(adapters);
    compositions = List.copyOf(compositions);
    train = List.copyOf(train);
  }

  /** A graft whose backward pass dequantizes int8 host layers ({@link Int8Backward#DEQUANTIZED}). */
  public GraftSpec(String name, String host, List<AdapterSpec> adapters, TaskSpec task, AdamWSpec optimizer,
      @Nullable Object source, List<Composition> compositions, List<String> train) {
    this(name, host, adapters, task, optimizer, source, compositions, train, Int8Backward.DEQUANTIZED);
  }

  /** A graft without compositions that trains every adapter. */
  public GraftSpec(String name, String host, List<AdapterSpec> adapters, TaskSpec task, AdamWSpec optimizer,
      @Nullable Object source) {
    this(name, host, adapters, task, optimizer, source, List.of(), List.of());
  }
}
