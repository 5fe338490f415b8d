package dev.graft.compiler.kinds;

import java.util.OptionalInt;

/**
 * The word-embedding lookup of a host: a Gather whose data is a 2-D host initializer [vocab,
 * hidden] and whose indices are graph input {@code input_ids}, directly or through Cast.
 *
 * @param node the Gather, e.g. {@code /embeddings/word_embeddings/Gather}
 * @param modulePath e.g. {@code embeddings.word_embeddings}
 * @param table the host initializer [vocab, hidden]
 * @param heads attention heads per layer, for PEFT's config; 0 where the host's attention was not found
 * @param layers attention layers, for PEFT's config; 0 where the host's attention was not found
 */
public record EmbeddingSite(
    String node, String modulePath, String table, long vocab, long hidden, long heads, int layers)
    implements Site {
  @Override
  public OptionalInt layer() {
    return OptionalInt.empty();
  }
}
