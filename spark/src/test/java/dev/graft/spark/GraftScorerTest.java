package dev.graft.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;
import org.apache.spark.SparkException;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Scoring on {@code local-cluster[2,1,1024]} (two executor JVMs) with a graft on the tiny BERT host:
 * the host read from a path, token ids in, the adapter broadcast; compared with the same graft run
 * in this JVM, and the executors' graft cache counted.
 */
class GraftScorerTest {
  static final int ROWS = 200;
  static final int PARTITIONS = 8;
  static final int BATCH = 8;
  static final int LABELS = 3;

  static SparkSession spark;
  static AdapterGraphs graphs;
  static Path adapter;
  static List<long[]> ids;

  @BeforeAll
  static void setUp() {
    spark = LocalCluster.session();
    graphs = TinyGrafts.classification(LABELS);
    adapter = TinyGrafts.randomAdapter(graphs, 3, TinyGrafts.DIR.resolve("tiny-adapter"));
    Random random = new Random(11);
    ids = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      long[] row = new long[1 + random.nextInt(TinyGrafts.MAX_POSITIONS)];
      for (int j = 0; j < row.length; j++) {
        row[j] = random.nextInt(TinyGrafts.VOCAB);
      }
      ids.add(row);
    }
  }

  static StructType schema() {
    return new StructType()
        .add("id", DataTypes.IntegerType, false)
        .add("input_ids", DataTypes.createArrayType(DataTypes.LongType, false), false)
        .add("jvm", DataTypes.StringType, false);
  }

  /** The rows in {@link #PARTITIONS} partitions; each row records the JVM that made it (the task's, which also scores it). */
  static Dataset<Row> frame() {
    JavaSparkContext context = JavaSparkContext.fromSparkContext(spark.sparkContext());
    List<Integer> index = new ArrayList<>();
    for (int i = 0; i < ROWS; i++) {
      index.add(i);
    }
    List<long[]> values = ids;
    JavaRDD<Row> rows = context.parallelize(index, PARTITIONS).map(i -> RowFactory.create(i,
        values.get(i), ManagementFactory.getRuntimeMXBean().getName()));
    return spark.createDataFrame(rows, schema());
  }

  static GraftScorer.Builder builder() {
    return GraftScorer.builder(graphs).adapter(adapter).host(TinyGrafts.host().toString()).tokenIdsColumn("input_ids")
        .batchSize(BATCH);
  }

  /** Logits of the rows {@code from..to} in this JVM, in batches of {@link #BATCH} from {@code from}. */
  static float[][] reference(AdapterModel model, int from, int to) {
    return reference(model, from, to, model::predict);
  }

  /** {@code run}'s rows for the rows {@code from..to} in this JVM, in batches of {@link #BATCH} from {@code from}. */
  static float[][] reference(AdapterModel model, int from, int to, Function<Map<String, long[][]>, float[][]> run) {
    List<String> names = model.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    float[][] out = new float[to - from][];
    for (int b = from; b < to; b += BATCH) {
      List<Example> batch = new ArrayList<>();
      for (int i = b; i < Math.min(to, b + BATCH); i++) {
        Map<String, long[]> f = new LinkedHashMap<>();
        f.put("input_ids", ids.get(i));
        long[] ones = new long[ids.get(i).length];
        Arrays.fill(ones, 1);
        f.put("attention_mask", ones);
        f.put("token_type_ids", new long[ids.get(i).length]);
        batch.add(Example.unlabelled(f));
      }
      float[][] logits = run.apply(Batch.of(batch, names).inputs());
      System.arraycopy(logits, 0, out, b - from, logits.length);
    }
    return out;
  }

  @Test
  void scoresAsThisJvmDoesAndOpensOneGraftPerExecutorJvm() {
    // intraOpThreads(1) (the executors' cores, as the default 0 resolves) gives this scorer a cache
    // key of its own: the other tests' scorers of the same graft and adapter share theirs.
    try (GraftScorer scorer = builder().intraOpThreads(1).output(ScoreOutput.PREDICTION)
        .output(ScoreOutput.PROBABILITIES).output(ScoreOutput.LOGITS).build(spark)) {
      List<Row> scored = scorer.score(frame()).collectAsList();
      assertEquals(ROWS, scored.size());

      // The same graft and adapter in this JVM, batched as the partitions batch (parallelize cuts
      // ROWS evenly), on one thread as each one-core executor runs it: identical logits.
      float[][] expected = new float[ROWS][];
      try (AdapterModel model = AdapterModel.open(graphs, TinyGrafts.options())) {
        model.loadAdapter(adapter);
        for (int p = 0; p < PARTITIONS; p++) {
          int from = p * ROWS / PARTITIONS;
          int to = (p + 1) * ROWS / PARTITIONS;
          float[][] part = reference(model, from, to);
          System.arraycopy(part, 0, expected, from, part.length);
        }
      }
      Set<String> jvms = new TreeSet<>();
      for (Row row : scored) {
        int id = row.getInt(0);
        float[] logits = floats(row.getList(row.fieldIndex("logits")));
        assertArrayEquals(expected[id], logits, 0f, "logits of row " + id);
        assertEquals(ScoreTask.argmax(expected[id]), row.getInt(row.fieldIndex("prediction")), "row " + id);
        float[] p = floats(row.getList(row.fieldIndex("probabilities")));
        assertArrayEquals(ScoreTask.softmax(expected[id]), p, 0f, "probabilities of row " + id);
        assertEquals(1.0, p[0] + p[1] + p[2], 1e-6);
        jvms.add(row.getString(row.fieldIndex("jvm")));
      }
      assertTrue(!jvms.contains(ManagementFactory.getRuntimeMXBean().getName()), "rows scored in the driver");

      // The cache: one open per executor JVM that scored, across its partitions and a second job.
      assertEquals(PARTITIONS, scorer.partitionsScored());
      assertEquals(ROWS, scorer.rowsScored());
      assertEquals(jvms.size(), scorer.graftsOpened(), "grafts opened; executor JVMs that scored: " + jvms);
      assertEquals(ROWS, scorer.score(frame()).count());
      assertEquals(2 * PARTITIONS, scorer.partitionsScored());
      assertEquals(jvms.size(), scorer.graftsOpened(), "a second job reopened the graft");
      System.err.printf("scoring: %d rows, %d partitions per job, 2 jobs, %d executor JVMs, %d grafts opened%n",
          ROWS, PARTITIONS, jvms.size(), scorer.graftsOpened());
    }
  }

  @Test
  void embeddingsAreThoseOfAdapterModelEmbed() {
    try (GraftScorer scorer = builder().output(ScoreOutput.EMBEDDING).output(ScoreOutput.LOGITS).build(spark)) {
      Dataset<Row> scored = scorer.score(frame());
      assertEquals(DataTypes.createArrayType(DataTypes.FloatType, false), scored.schema().apply("embedding").dataType());
      List<Row> rows = scored.collectAsList();
      assertEquals(ROWS, rows.size());
      float[][] embeddings = new float[ROWS][];
      float[][] logits = new float[ROWS][];
      try (AdapterModel model = AdapterModel.open(graphs, TinyGrafts.options())) {
        model.loadAdapter(adapter);
        for (int p = 0; p < PARTITIONS; p++) {
          int from = p * ROWS / PARTITIONS;
          int to = (p + 1) * ROWS / PARTITIONS;
          System.arraycopy(reference(model, from, to, model::embed), 0, embeddings, from, to - from);
          System.arraycopy(reference(model, from, to), 0, logits, from, to - from);
        }
      }
      long width = graphs.manifest().getTask().getEmbeddingSize();
      assertEquals(8, width, "the tiny host's hidden size");
      for (Row row : rows) {
        int id = row.getInt(0);
        float[] embedding = floats(row.getList(row.fieldIndex("embedding")));
        assertEquals(width, embedding.length);
        assertArrayEquals(embeddings[id], embedding, 0f, "embedding of row " + id);
        assertArrayEquals(logits[id], floats(row.getList(row.fieldIndex("logits"))), 0f, "logits of row " + id);
      }
    }
  }

  @Test
  void aGraftWhoseManifestNamesNoEmbeddingHasNoneGraftR151() {
    var m = graphs.manifest();
    AdapterGraphs old = AdapterGraphs.of(m.toBuilder().setTask(m.getTask().toBuilder().clearEmbeddingOutput()
        .clearEmbeddingSize()).build(), graphs.inferenceGraph(), graphs.trainGraph());
    GraftException e = assertThrows(GraftException.class, () -> GraftScorer.builder(old)
        .host(TinyGrafts.host().toString()).tokenIdsColumn("input_ids").output(ScoreOutput.EMBEDDING).build(spark));
    assertTrue(e.getMessage().startsWith("[GRAFT-R151] graft '" + m.getName() + "' has no EMBEDDING"), e.getMessage());
  }

  @Test
  void batchesOfAnotherSizeAgreeWithinFloatNoise() {
    // Batches of 5 inside partitions of 25 pad rows to other lengths than the single-process loop
    // over all rows in batches of 8: the padded positions are masked, so logits agree to float noise.
    try (GraftScorer scorer = builder().batchSize(5).output(ScoreOutput.LOGITS).build(spark);
        AdapterModel model = AdapterModel.open(graphs, TinyGrafts.options())) {
      model.loadAdapter(adapter);
      float[][] expected = reference(model, 0, ROWS);
      double worst = 0;
      for (Row row : scorer.score(frame()).collectAsList()) {
        float[] logits = floats(row.getList(row.fieldIndex("logits")));
        for (int k = 0; k < LABELS; k++) {
          worst = Math.max(worst, Math.abs(logits[k] - expected[row.getInt(0)][k]));
        }
      }
      System.err.printf("scoring: batches of 5 in partitions vs one loop in batches of 8: max |logit diff| %.3g%n", worst);
      assertTrue(worst <= 1e-5, "max |logit difference| " + worst);
    }
  }

  @Test
  void withoutAnAdapterTheInitializedParametersScore() {
    try (GraftScorer scorer = GraftScorer.builder(graphs).host(TinyGrafts.host().toString())
        .tokenIdsColumn("input_ids").batchSize(BATCH).output(ScoreOutput.LOGITS).build(spark);
        AdapterModel model = AdapterModel.open(graphs, TinyGrafts.options())) {
      float[][] expected = reference(model, 0, BATCH);
      List<Row> rows = scorer.score(frame().filter(functions.col("id").lt(BATCH)).coalesce(1)).collectAsList();
      assertEquals(BATCH, rows.size());
      for (Row row : rows) {
        assertArrayEquals(expected[row.getInt(0)], floats(row.getList(row.fieldIndex("logits"))), 1e-6f);
      }
    }
  }

  @Test
  void executorsRunOrtOnTheirCores() {
    JavaSparkContext context = JavaSparkContext.fromSparkContext(spark.sparkContext());
    List<Integer> cores = context.parallelize(List.of(1, 2, 3, 4), 4).map(i -> ExecutorGrafts.executorCores()).collect();
    assertEquals(List.of(1, 1, 1, 1), cores);
  }

  @Test
  void columnsTheScorerCannotReadOrWriteAreGraftR150() {
    try (GraftScorer scorer = builder().output(ScoreOutput.PREDICTION).build(spark)) {
      GraftException missing = assertThrows(GraftException.class, () -> scorer.score(frame().drop("input_ids")));
      assertTrue(missing.getMessage().startsWith("[GRAFT-R150] the DataFrame has no column 'input_ids'"), missing.getMessage());
      GraftException type = assertThrows(GraftException.class,
          () -> scorer.score(frame().withColumn("input_ids", functions.col("jvm"))));
      assertTrue(type.getMessage().contains("[GRAFT-R150] column 'input_ids' is string; a token ids column must be"
          + " array<int> or array<bigint>"), type.getMessage());
      GraftException clash = assertThrows(GraftException.class,
          () -> scorer.score(frame().withColumnRenamed("jvm", "prediction")));
      assertTrue(clash.getMessage().contains("[GRAFT-R150] the DataFrame already has a column 'prediction'"),
          clash.getMessage());
    }
    GraftException twice = assertThrows(GraftException.class,
        () -> builder().output(ScoreOutput.PREDICTION, "x").output(ScoreOutput.LOGITS, "x"));
    assertEquals("GRAFT-R150", twice.getCode());
  }

  @Test
  void anOutputTheTaskHasNotIsGraftR151() {
    AdapterGraphs regression = TinyGrafts.regression(2);
    GraftException e = assertThrows(GraftException.class, () -> GraftScorer.builder(regression)
        .host(TinyGrafts.host().toString()).tokenIdsColumn("input_ids").output(ScoreOutput.PROBABILITIES).build(spark));
    assertTrue(e.getMessage().startsWith("[GRAFT-R151] graft 'TinyRegression' is a regression graft; it has no"
        + " PROBABILITIES"), e.getMessage());
    // What it has: predicted values.
    try (GraftScorer scorer = GraftScorer.builder(regression).host(TinyGrafts.host().toString())
        .tokenIdsColumn("input_ids").build(spark)) {
      Dataset<Row> scored = scorer.score(frame().limit(3));
      assertEquals(DataTypes.createArrayType(DataTypes.FloatType, false), scored.schema().apply("prediction").dataType());
      assertEquals(2, scored.first().getList(scored.schema().fieldIndex("prediction")).size());
    }
  }

  @Test
  void aRowWithoutIdsIsGraftR152AndFailsTheJob() {
    StructType schema = new StructType().add("input_ids", DataTypes.createArrayType(DataTypes.IntegerType, true), true);
    Dataset<Row> rows = spark.createDataFrame(List.of(RowFactory.create((Object) new int[] {1, 2, 3}), RowFactory.create((Object) null)),
        schema).coalesce(1);
    try (GraftScorer scorer = builder().build(spark)) {
      SparkException e = assertThrows(SparkException.class, () -> scorer.score(rows).collectAsList());
      assertTrue(e.getMessage().contains("[GRAFT-R152] column 'input_ids' is null in row"), e.getMessage());
      Dataset<Row> empty = spark.createDataFrame(List.of(RowFactory.create((Object) new int[0])), schema).coalesce(1);
      SparkException emptyIds = assertThrows(SparkException.class, () -> scorer.score(empty).collectAsList());
      assertTrue(emptyIds.getMessage().contains("[GRAFT-R152] column 'input_ids' is an empty array"), emptyIds.getMessage());
    }
  }

  @Test
  void idsOutsideTheVocabularyAreTheRuntimesGraftR090() {
    StructType schema = new StructType().add("input_ids", DataTypes.createArrayType(DataTypes.IntegerType, false), false);
    Dataset<Row> rows = spark.createDataFrame(List.of(RowFactory.create((Object) new int[] {1, TinyGrafts.VOCAB})), schema);
    try (GraftScorer scorer = builder().build(spark)) {
      SparkException e = assertThrows(SparkException.class, () -> scorer.score(rows).collectAsList());
      assertTrue(e.getMessage().contains("[GRAFT-R090]"), e.getMessage());
    }
  }

  @Test
  void anAdapterOfAnotherGraftIsRefusedOnTheDriver() {
    AdapterGraphs five = TinyGrafts.classification(5);
    GraftException e = assertThrows(GraftException.class,
        () -> GraftScorer.builder(five).adapter(adapter).tokenIdsColumn("input_ids").build(spark));
    assertTrue(e.getMessage().startsWith("[GRAFT-R"), e.getMessage());
  }

  static float[] floats(List<Object> values) {
    float[] out = new float[values.size()];
    for (int i = 0; i < out.length; i++) {
      out[i] = (Float) values.get(i);
    }
    return out;
  }
}
