package dev.graft.spark;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.io.PeftAdapters;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.ArrayType;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.Metadata;
import org.apache.spark.sql.types.StructField;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.util.LongAccumulator;
import org.jspecify.annotations.Nullable;

/**
 * Batch scoring of a compiled graft over a DataFrame: a column of text (tokenized on the executors)
 * or of token ids in, predictions, probabilities, logits or embeddings out, appended to every row.
 *
 * <p>The graft's manifest and inference graph and the adapter (an adapter folder's files) are
 * broadcast once as bytes; the host is read by each executor from its class path (the manifest's
 * host resource, e.g. in the application jar) or from a path every executor can read. Each
 * executor JVM opens the graft once, on its first task, and keeps it for every later task and
 * partition of every job ({@link #graftsOpened()} counts the opens); inside a partition rows are
 * scored in batches of {@link Builder#batchSize}, each padded to its longest row; ONNX Runtime's
 * intra-op threads default to the executor's cores ({@code spark.executor.cores}).
 *
 * <pre>{@code
 * GraftScorer scorer = GraftScorer.builder(AdapterGraphs.fromClasspath(SentimentLoraGraft.class, "SentimentLora"))
 *     .adapter(Path.of("sentiment-lora"))
 *     .textColumn("text", "all-minilm-l6-v2-tokenizer.json", 64)
 *     .output(ScoreOutput.PREDICTION).output(ScoreOutput.PROBABILITIES)
 *     .build(spark);
 * Dataset<Row> scored = scorer.score(sentences);   // text, prediction, probabilities
 * }</pre>
 *
 * <p>Errors are {@link GraftException}s: {@code GRAFT-R150} for a column the scorer cannot read or
 * write, {@code GRAFT-R151} for an output the graft's task has not, {@code GRAFT-R152} for a row it
 * cannot score (raised on an executor, it fails the task and so the job), and the runtime's own
 * codes for the adapter, the host and the host inputs (ids outside the vocabulary, sequences
 * longer than the positions).
 */
public final class GraftScorer implements AutoCloseable {
  /** The default number of rows a batch holds. */
  public static final int DEFAULT_BATCH_SIZE = 32;

  private final Broadcast<ScoringPayload> payload;
  private final Manifest manifest;
  private final ScoreTask task;
  private final String inputColumn;
  private final boolean text;
  private final int batchSize;
  private final Map<ScoreOutput, String> outputs;
  private final LongAccumulator opened;
  private final LongAccumulator partitions;
  private final LongAccumulator rows;

  private GraftScorer(Builder b, SparkSession spark, ScoringPayload p, ScoreTask task) {
    JavaSparkContext context = JavaSparkContext.fromSparkContext(spark.sparkContext());
    this.payload = context.broadcast(p);
    this.manifest = b.graphs.manifest();
    this.task = task;
    this.inputColumn = Objects.requireNonNull(b.inputColumn);
    this.text = b.tokenizer != null;
    this.batchSize = b.batchSize;
    this.outputs = new LinkedHashMap<>(b.outputs);
    String name = "graft " + manifest.getName();
    this.opened = spark.sparkContext().longAccumulator(name + " opened");
    this.partitions = spark.sparkContext().longAccumulator(name + " partitions scored");
    this.rows = spark.sparkContext().longAccumulator(name + " rows scored");
  }

  /** A scorer of the compiled graft {@code graphs} (only its manifest and inference graph are used). */
  public static Builder builder(AdapterGraphs graphs) {
    return new Builder(graphs);
  }

  /**
   * The rows of {@code input} with the outputs appended as columns, in the order they were asked
   * for. Lazy, as any transformation: the scoring runs when an action runs. The schema is checked
   * here: the input column must exist and be a string (text) or an array of int or bigint (token
   * ids), and no output column may exist already ({@code GRAFT-R150}).
   */
  public Dataset<Row> score(Dataset<Row> input) {
    StructType schema = input.schema();
    List<String> names = Arrays.asList(schema.fieldNames());
    int index = names.indexOf(inputColumn);
    if (index < 0) {
      throw new GraftException(RuntimeErrorCode.SCORING_COLUMN, "the DataFrame has no column '" + inputColumn
          + "' to score; its columns are " + names);
    }
    DataType type = schema.fields()[index].dataType();
    if (text && !type.equals(DataTypes.StringType)) {
      throw new GraftException(RuntimeErrorCode.SCORING_COLUMN, "column '" + inputColumn + "' is " + type.simpleString()
          + "; a text column must be a string");
    }
    if (!text && !(type instanceof ArrayType a
        && (a.elementType().equals(DataTypes.IntegerType) || a.elementType().equals(DataTypes.LongType)))) {
      throw new GraftException(RuntimeErrorCode.SCORING_COLUMN, "column '" + inputColumn + "' is " + type.simpleString()
          + "; a token ids column must be array<int> or array<bigint>");
    }
    StructType out = schema;
    for (Map.Entry<ScoreOutput, String> o : outputs.entrySet()) {
      if (names.contains(o.getValue())) {
        throw new GraftException(RuntimeErrorCode.SCORING_COLUMN, "the DataFrame already has a column '" + o.getValue()
            + "' for the " + o.getKey() + " output; name another with output(" + o.getKey() + ", column)");
      }
      out = out.add(new StructField(o.getValue(), task.type(o.getKey()), false, Metadata.empty()));
    }
    ScorePartition function = new ScorePartition(payload, opened, partitions, rows, index, inputColumn, text, batchSize,
        List.copyOf(outputs.keySet()), task);
    return input.mapPartitions(function, Encoders.row(out));
  }

  /** How many times an executor JVM opened this scorer's graft, over every job so far (one per executor JVM). */
  public long graftsOpened() {
    return opened.value();
  }

  /** How many partitions this scorer has scored, over every job so far. */
  public long partitionsScored() {
    return partitions.value();
  }

  /** How many rows this scorer has scored, over every job so far. */
  public long rowsScored() {
    return rows.value();
  }

  /** The manifest of the graft this scorer runs. */
  public Manifest getManifest() {
    return manifest;
  }

  /** Removes the broadcast from the executors; the scorer cannot score after this. Open grafts stay open. */
  @Override
  public void close() {
    payload.destroy();
  }

  /** How a {@link GraftScorer} is made. */
  public static final class Builder {
    private final AdapterGraphs graphs;
    private @Nullable Path adapter;
    private @Nullable String host;
    private @Nullable String inputColumn;
    private @Nullable String tokenizer;
    private boolean tokenizerOnClassPath;
    private int maxTokens;
    private int batchSize = DEFAULT_BATCH_SIZE;
    private int intraOpThreads;
    private final Map<ScoreOutput, String> outputs = new LinkedHashMap<>();

    private Builder(AdapterGraphs graphs) {
      this.graphs = Objects.requireNonNull(graphs, "graphs");
    }

    /**
     * The adapter to score with: a folder written by {@code AdapterModel.saveAdapter} or by PEFT
     * ({@code adapter_config.json}, {@code adapter_model.safetensors}), read and checked against
     * the graft on the driver, then broadcast. Without one the graft's initialized parameters score.
     */
    public Builder adapter(Path dir) {
      this.adapter = Objects.requireNonNull(dir, "dir");
      return this;
    }

    /** The host ONNX file at a path every executor can read (default: the manifest's host on the executors' class path). */
    public Builder host(String path) {
      this.host = Objects.requireNonNull(path, "path");
      return this;
    }

    /** A text column, tokenized on the executors with a {@code tokenizer.json} class-path resource, at most {@code maxTokens} tokens. */
    public Builder textColumn(String column, String tokenizerResource, int maxTokens) {
      return input(column, tokenizerResource, true, maxTokens);
    }

    /** A text column, tokenized with a {@code tokenizer.json} file every executor can read. */
    public Builder textColumn(String column, Path tokenizerJson, int maxTokens) {
      return input(column, tokenizerJson.toString(), false, maxTokens);
    }

    /**
     * A column of token ids ({@code array<int>} or {@code array<bigint>}), fed as {@code input_ids}
     * with an all-ones {@code attention_mask} and zero {@code token_type_ids}.
     */
    public Builder tokenIdsColumn(String column) {
      return input(column, null, false, 0);
    }

    private Builder input(String column, @Nullable String tokenizerSource, boolean onClassPath, int max) {
      if (inputColumn != null) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "the scorer reads one column; '" + inputColumn
            + "' was given before '" + column + "'");
      }
      if (tokenizerSource != null && max < 2) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "maxTokens must be >= 2 (room for special tokens), got " + max);
      }
      this.inputColumn = Objects.requireNonNull(column, "column");
      this.tokenizer = tokenizerSource;
      this.tokenizerOnClassPath = onClassPath;
      this.maxTokens = max;
      return this;
    }

    /** Adds an output in its default column ({@link ScoreOutput#defaultColumn()}). */
    public Builder output(ScoreOutput output) {
      return output(output, output.defaultColumn());
    }

    /** Adds an output in the named column. */
    public Builder output(ScoreOutput output, String column) {
      if (outputs.containsKey(output)) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "output " + output + " was asked for twice");
      }
      if (outputs.containsValue(column)) {
        throw new GraftException(RuntimeErrorCode.SCORING_COLUMN, "two outputs are given the column '" + column + "'");
      }
      outputs.put(Objects.requireNonNull(output, "output"), Objects.requireNonNull(column, "column"));
      return this;
    }

    /** Rows per batch inside a partition (default {@value #DEFAULT_BATCH_SIZE}). */
    public Builder batchSize(int rows) {
      if (rows < 1) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "batchSize must be >= 1, got " + rows);
      }
      this.batchSize = rows;
      return this;
    }

    /** ONNX Runtime intra-op threads per executor JVM; 0 (the default): the executor's cores. */
    public Builder intraOpThreads(int threads) {
      if (threads < 0) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "intraOpThreads must be >= 0, got " + threads);
      }
      this.intraOpThreads = threads;
      return this;
    }

    /** Checks the settings and the adapter, and broadcasts what executors need. */
    public GraftScorer build(SparkSession spark) {
      Objects.requireNonNull(spark, "spark");
      if (inputColumn == null) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "no input column: give textColumn(...) or tokenIdsColumn(...)");
      }
      ScoreTask task = ScoreTask.of(graphs.manifest());
      if (outputs.isEmpty()) {
        outputs.put(ScoreOutput.PREDICTION, ScoreOutput.PREDICTION.defaultColumn());
      }
      outputs.keySet().forEach(o -> task.check(o, graphs.manifest()));
      byte[] config = null;
      byte[] weights = null;
      if (adapter != null) {
        PeftAdapters.load(new CheckingStore(graphs.manifest()), adapter);
        config = read(adapter.resolve(PeftAdapters.CONFIG_FILE));
        weights = read(adapter.resolve(PeftAdapters.WEIGHTS_FILE));
      }
      ScoringPayload p = new ScoringPayload(graphs, config, weights, host, tokenizer, tokenizerOnClassPath, maxTokens,
          intraOpThreads);
      return new GraftScorer(this, spark, p, task);
    }

    private static byte[] read(Path file) {
      try {
        long size = Files.size(file);
        if (size > Integer.MAX_VALUE - 8) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT, file + " has " + size + " bytes; a broadcast adapter"
              + " file holds at most " + (Integer.MAX_VALUE - 8));
        }
        return Files.readAllBytes(file);
      } catch (IOException e) {
        throw new GraftException(RuntimeErrorCode.IO, "cannot read " + file + " to broadcast it: " + e, e);
      }
    }
  }

  /**
   * Parameters without sessions: what the runtime's adapter reader fills, so that the driver checks
   * an adapter folder against the graft (config, keys, shapes) before broadcasting it.
   */
  private static final class CheckingStore implements ParameterStore {
    private final Manifest manifest;
    private final Map<String, Integer> sizes = new LinkedHashMap<>();

    CheckingStore(Manifest manifest) {
      this.manifest = manifest;
      for (Parameter p : manifest.getParametersList()) {
        long n = 1;
        for (long d : p.getShapeList()) {
          n = d < 0 || n > Integer.MAX_VALUE / Math.max(d, 1) ? -1 : n * d;
          if (n < 0) {
            throw new GraftException(RuntimeErrorCode.FORMAT, "graft '" + manifest.getName() + "': parameter '"
                + p.getName() + "' has the shape " + p.getShapeList() + ", not one a Java array holds");
          }
        }
        sizes.put(p.getName(), (int) n);
      }
    }

    @Override
    public Manifest getManifest() {
      return manifest;
    }

    @Override
    public float[] getParameter(String name) {
      return new float[size(name)];
    }

    @Override
    public void setParameter(String name, float[] values) {
      if (values.length != size(name)) {
        throw new GraftException(RuntimeErrorCode.TENSOR_MISMATCH, "parameter '" + name + "' has " + size(name)
            + " values; the adapter gives " + values.length);
      }
    }

    private int size(String name) {
      Integer n = sizes.get(name);
      if (n == null) {
        throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "graft '" + manifest.getName() + "' has no parameter '"
            + name + "'");
      }
      return n;
    }
  }
}
