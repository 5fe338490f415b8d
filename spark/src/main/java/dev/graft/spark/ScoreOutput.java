package dev.graft.spark;

/**
 * What {@link GraftScorer} adds to each row, from the graft's head output (its logits) for the row,
 * or from the pooled representation the head reads ({@link #EMBEDDING}). Which ones a graft offers
 * depends on its task ({@code GRAFT-R151} for one it does not).
 */
public enum ScoreOutput {
  /**
   * The prediction: the most probable class ({@code int}) of a classification graft, the labels
   * whose probability exceeds 0.5 ({@code array<int>}, ascending) of a multi-label graft, the
   * predicted values ({@code array<float>}) of a regression graft.
   */
  PREDICTION("prediction"),
  /**
   * Class probabilities ({@code array<float>}): the softmax of a classification graft's logits,
   * each label's sigmoid for a multi-label graft. A regression graft has none.
   */
  PROBABILITIES("probabilities"),
  /** The head's raw output ({@code array<float>}): logits, or a regression graft's predictions. */
  LOGITS("logits"),
  /**
   * The graft's embedding ({@code array<float>} of the manifest's {@code embedding_size}): the
   * pooled representation its head reads, the adapted host's sentence embedding, as {@code
   * AdapterModel.embed} computes it. Every graft the scorer runs has one unless it was compiled
   * before embeddings were recorded.
   */
  EMBEDDING("embedding");

  private final String defaultColumn;

  ScoreOutput(String defaultColumn) {
    this.defaultColumn = defaultColumn;
  }

  /** The column the output goes to unless another is named. */
  public String defaultColumn() {
    return defaultColumn;
  }
}
