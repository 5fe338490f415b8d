package dev.graft.examples.sentiment;

import dev.graft.compiler.HostModel;
import dev.graft.runtime.AdapterModel;
import dev.graft.runtime.data.Batch;
import dev.graft.runtime.data.Example;
import dev.graft.runtime.data.LabelledText;
import dev.graft.runtime.data.Split;
import dev.graft.runtime.text.TextTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The sentiment task's data and host: the 3000 UCI Sentiment Labelled Sentences, tokenized for
 * all-MiniLM-L6-v2 (64 tokens) and split 2400 / 600 with a fixed seed.
 *
 * @param train the training examples
 * @param heldOut the held-out examples
 */
public record SentimentData(List<Example> train, List<Example> heldOut) {
  public static final String HOST = "all-minilm-l6-v2.onnx";
  /** The int8 all-MiniLM-L6-v2 (langchain4j's {@code -q} jar): same tokenizer, int8 linear layers. */
  public static final String INT8_HOST = "all-minilm-l6-v2-q.onnx";
  public static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";
  static final String DATA = "dev/graft/examples/sentiment/";
  static final List<String> SOURCES = List.of("amazon.tsv", "imdb.tsv", "yelp.tsv");
  public static final int MAX_TOKENS = 64;
  static final double HELD_OUT = 0.2;
  static final long SPLIT_SEED = 7;

  /** Reads, tokenizes and splits the sentences (reports the sizes on stderr). */
  public static SentimentData load() {
    Split<LabelledText> split = texts();
    int all = split.train().size() + split.heldOut().size();
    SentimentData data;
    try (TextTokenizer tokenizer = TextTokenizer.fromClasspath(TOKENIZER, MAX_TOKENS)) {
      data = new SentimentData(examples(tokenizer, split.train()), examples(tokenizer, split.heldOut()));
    }
    System.err.printf(Locale.ROOT, "data: %d sentences (%s), %d train, %d held out%n",
        all, String.join(", ", SOURCES), data.train().size(), data.heldOut().size());
    return data;
  }

  /**
   * Each source alone ({@code amazon}, {@code imdb}, {@code yelp}, in that order), tokenized as
   * {@link #load()} does and split 800 / 200 with the same seed: what the merging benchmark trains
   * one adapter per source on.
   */
  public static Map<String, SentimentData> bySource() {
    Map<String, SentimentData> out = new LinkedHashMap<>();
    try (TextTokenizer tokenizer = TextTokenizer.fromClasspath(TOKENIZER, MAX_TOKENS)) {
      for (String source : SOURCES) {
        Split<LabelledText> split = Split.of(read(source), HELD_OUT, SPLIT_SEED);
        out.put(source.substring(0, source.indexOf('.')),
            new SentimentData(examples(tokenizer, split.train()), examples(tokenizer, split.heldOut())));
      }
    }
    return out;
  }

  /** The sentences untokenized, split as {@link #load} splits them. */
  public static Split<LabelledText> texts() {
    List<LabelledText> all = new ArrayList<>();
    for (String source : SOURCES) {
      all.addAll(read(source));
    }
    return Split.of(all, HELD_OUT, SPLIT_SEED);
  }

  /** The labelled sentences of one source file ({@code amazon.tsv}, …). */
  private static List<LabelledText> read(String source) {
    return LabelledText.readTsv(SentimentData.class.getClassLoader(), DATA + source);
  }

  static List<Example> examples(TextTokenizer tokenizer, List<LabelledText> texts) {
    List<Example> out = new ArrayList<>(texts.size());
    for (LabelledText t : texts) {
      out.add(new Example(tokenizer.encode(t.text()), t.label()));
    }
    return out;
  }

  /** Whether two models give bit-identical logits on every example (batches of 64). */
  public static boolean samePredictions(AdapterModel a, AdapterModel b, List<Example> examples) {
    List<String> names = a.getManifest().getInputsList().stream().map(i -> i.getName()).toList();
    for (int i = 0; i < examples.size(); i += 64) {
      Batch batch = Batch.of(examples.subList(i, Math.min(examples.size(), i + 64)), names);
      if (!Arrays.deepEquals(a.predict(batch.inputs()), b.predict(batch.inputs()))) {
        return false;
      }
    }
    return true;
  }

  /** The host model from the class path (the langchain4j all-MiniLM-L6-v2 jar). */
  public static HostModel readHost() {
    return readHost(HOST);
  }

  /** The host model {@code resource} from the class path ({@link #HOST}, {@link #INT8_HOST}). */
  public static HostModel readHost(String resource) {
    try (InputStream in = SentimentData.class.getClassLoader().getResourceAsStream(resource)) {
      if (in == null) {
        throw new IllegalStateException("host model " + resource + " is not on the class path (langchain4j jar missing?)");
      }
      return HostModel.read(in, resource);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
