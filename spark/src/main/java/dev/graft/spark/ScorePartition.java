package dev.graft.spark;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.text.TextTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.util.LongAccumulator;
import org.jspecify.annotations.Nullable;

/**
 * Scores one partition: the JVM's open graft ({@link ExecutorGrafts}), rows read in batches of
 * {@code batchSize} (each padded to its longest row), every input column kept and the outputs
 * appended in the order asked. Rows stream through: a partition is never held whole.
 */
final class ScorePartition implements MapPartitionsFunction<Row, Row> {
  private static final long serialVersionUID = 1L;

  private final Broadcast<ScoringPayload> payload;
  private final LongAccumulator opened;
  private final LongAccumulator partitions;
  private final LongAccumulator rows;
  private final int inputColumn;
  private final String inputName;
  private final boolean text;
  private final int batchSize;
  private final List<ScoreOutput> outputs;
  private final ScoreTask task;

  ScorePartition(Broadcast<ScoringPayload> payload, LongAccumulator opened, LongAccumulator partitions,
      LongAccumulator rows, int inputColumn, String inputName, boolean text, int batchSize,
      List<ScoreOutput> outputs, ScoreTask task) {
    this.payload = payload;
    this.opened = opened;
    this.partitions = partitions;
    this.rows = rows;
    this.inputColumn = inputColumn;
    this.inputName = inputName;
    this.text = text;
    this.batchSize = batchSize;
    this.outputs = List.copyOf(outputs);
    this.task = task;
  }

  @Override
  public Iterator<Row> call(Iterator<Row> input) {
    ExecutorGrafts.Open graft = ExecutorGrafts.get(payload.value(), opened);
    partitions.add(1);
    return new Iterator<>() {
      private final List<Row> pending = new ArrayList<>();
      private Iterator<Row> scored = List.<Row>of().iterator();

      @Override
      public boolean hasNext() {
        if (!scored.hasNext() && input.hasNext()) {
          pending.clear();
          while (pending.size() < batchSize && input.hasNext()) {
            pending.add(input.next());
          }
          scored = score(graft, pending).iterator();
        }
        return scored.hasNext();
      }

      @Override
      public Row next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return scored.next();
      }
    };
  }

  private List<Row> score(ExecutorGrafts.Open graft, List<Row> batchRows) {
    List<Example> examples = new ArrayList<>(batchRows.size());
    for (Row row : batchRows) {
      examples.add(Example.unlabelled(features(graft.tokenizer(), row)));
    }
    Map<String, long[][]> inputs = Batch.of(examples, graft.inputNames()).inputs();
    // Each is one inference run, made only when an output needs it.
    float @Nullable [][] logits = outputs.stream().anyMatch(o -> o != ScoreOutput.EMBEDDING) ? graft.model().predict(inputs) : null;
    float @Nullable [][] embeddings = outputs.contains(ScoreOutput.EMBEDDING) ? graft.model().embed(inputs) : null;
    List<Row> out = new ArrayList<>(batchRows.size());
    for (int i = 0; i < batchRows.size(); i++) {
      Row row = batchRows.get(i);
      Object[] values = new Object[row.length() + outputs.size()];
      for (int c = 0; c < row.length(); c++) {
        values[c] = row.get(c);
      }
      for (int o = 0; o < outputs.size(); o++) {
        values[row.length() + o] = task.value(outputs.get(o), logits == null ? null : logits[i],
            embeddings == null ? null : embeddings[i]);
      }
      out.add(RowFactory.create(values));
    }
    rows.add(batchRows.size());
    return out;
  }

  /** A row's host input features: the tokenized text, or the given ids with an all-ones mask and zero type ids. */
  private Map<String, long[]> features(@Nullable TextTokenizer tokenizer, Row row) {
    if (row.isNullAt(inputColumn)) {
      throw new GraftException(RuntimeErrorCode.SCORING_ROW, "column '" + inputName + "' is null in row " + row
          + "; every row to score needs a value");
    }
    if (text && tokenizer != null) {
      return tokenizer.encode(row.getString(inputColumn));
    }
    long[] ids = ids(row);
    Map<String, long[]> features = new LinkedHashMap<>();
    features.put(TextTokenizer.INPUT_IDS, ids);
    long[] ones = new long[ids.length];
    Arrays.fill(ones, 1L);
    features.put(TextTokenizer.ATTENTION_MASK, ones);
    features.put(TextTokenizer.TOKEN_TYPE_IDS, new long[ids.length]);
    return features;
  }

  private long[] ids(Row row) {
    List<Object> list = row.getList(inputColumn);
    if (list.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.SCORING_ROW, "column '" + inputName + "' is an empty array in row "
          + row + "; a row to score needs at least one token id");
    }
    long[] ids = new long[list.size()];
    for (int i = 0; i < ids.length; i++) {
      Object id = list.get(i);
      if (id == null) {
        throw new GraftException(RuntimeErrorCode.SCORING_ROW, "column '" + inputName + "' has a null token id at"
            + " position " + i + " in row " + row);
      }
      ids[i] = ((Number) id).longValue();
    }
    return ids;
  }
}
