package dev.graft.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.graft.dsl.Graft;
import dev.graft.runtime.AdapterGraphs;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.ModelOptions;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.text.TextTokenizer;
import dev.graft.testing.MiniLmHost;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

/**
 * Text scoring on the real all-MiniLM-L6-v2 host on {@code local-cluster[2,1,1024]}: the host and
 * the tokenizer read from the executors' class path (the langchain4j jar, as an application jar
 * would carry them), sentences tokenized on the executors; the same graft in this JVM with the
 * same batches gives identical logits.
 */
class MiniLmScoringTest {
  static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";
  static final int MAX_TOKENS = 64;
  static final int BATCH = 4;
  static final int PARTITIONS = 3;
  static final List<String> SENTENCES = List.of(
      "The food was wonderful and the staff were friendly.", "Terrible service, I will never come back.",
      "It broke after two days.", "Best purchase I have made this year!", "The plot made no sense at all.",
      "A moving film with a great cast.", "Battery life is short but the screen is lovely.", "Meh.",
      "I would recommend it to anyone who likes long walks.", "The soup was cold and the bread was stale.",
      "Works exactly as described; shipping was quick.", "Not worth the money.");

  @Test
  void textScoresAsThisJvmDoes() {
    SparkSession spark = LocalCluster.session();
    AdapterGraphs graphs = Graft.graphs(Graft.host(MiniLmHost.get()).name("MiniLmScore").lora("", o -> o.rank(4))
        .classification(2).compile());
    JavaSparkContext context = JavaSparkContext.fromSparkContext(spark.sparkContext());
    List<Row> rows = new ArrayList<>();
    for (int i = 0; i < SENTENCES.size(); i++) {
      rows.add(RowFactory.create(i, SENTENCES.get(i)));
    }
    StructType schema = new StructType().add("id", DataTypes.IntegerType, false).add("text", DataTypes.StringType, false);
    Dataset<Row> frame = spark.createDataFrame(context.parallelize(rows, PARTITIONS), schema);
    float[][] expected = new float[SENTENCES.size()][];
    try (AdapterModel model = AdapterModel.open(graphs, ModelOptions.defaults().withTraining(false).withIntraOpThreads(1));
        TextTokenizer tokenizer = TextTokenizer.fromClasspath(TOKENIZER, MAX_TOKENS)) {
      List<String> names = model.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
      int per = SENTENCES.size() / PARTITIONS;
      for (int p = 0; p < PARTITIONS; p++) {
        for (int b = p * per; b < (p + 1) * per; b += BATCH) {
          List<Example> batch = new ArrayList<>();
          for (int i = b; i < Math.min((p + 1) * per, b + BATCH); i++) {
            batch.add(Example.unlabelled(tokenizer.encode(SENTENCES.get(i))));
          }
          float[][] logits = model.predict(Batch.of(batch, names).inputs());
          System.arraycopy(logits, 0, expected, b, logits.length);
        }
      }
    }
    try (GraftScorer scorer = GraftScorer.builder(graphs).textColumn("text", TOKENIZER, MAX_TOKENS).batchSize(BATCH)
        .output(ScoreOutput.LOGITS).output(ScoreOutput.PREDICTION).build(spark)) {
      List<Row> scored = scorer.score(frame).collectAsList();
      assertEquals(SENTENCES.size(), scored.size());
      for (Row row : scored) {
        int id = row.getInt(0);
        assertEquals(SENTENCES.get(id), row.getString(1));
        assertArrayEquals(expected[id], GraftScorerTest.floats(row.getList(2)), 0f, "logits of row " + id);
        assertEquals(ScoreTask.argmax(expected[id]), row.getInt(3));
      }
      assertEquals(PARTITIONS, scorer.partitionsScored());
      System.err.printf("minilm scoring: %d sentences, %d partitions, %d grafts opened%n", SENTENCES.size(),
          scorer.partitionsScored(), scorer.graftsOpened());
    }
  }
}
