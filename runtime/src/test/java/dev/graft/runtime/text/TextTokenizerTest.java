package dev.graft.runtime.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Runs the all-MiniLM-L6-v2 tokenizer (BERT uncased WordPiece) from the langchain4j jar, offline. */
class TextTokenizerTest {
  static TextTokenizer tokenizer;

  @BeforeAll
  static void load() {
    tokenizer = TextTokenizer.fromClasspath("all-minilm-l6-v2-tokenizer.json", 8);
  }

  @AfterAll
  static void close() {
    tokenizer.close();
  }

  @Test
  void helloWorldHasTheKnownIds() {
    Map<String, long[]> f = tokenizer.encode("Hello world");
    assertArrayEquals(new long[] {101, 7592, 2088, 102}, f.get(TextTokenizer.INPUT_IDS));
    assertArrayEquals(new long[] {1, 1, 1, 1}, f.get(TextTokenizer.ATTENTION_MASK));
    assertArrayEquals(new long[] {0, 0, 0, 0}, f.get(TextTokenizer.TOKEN_TYPE_IDS));
    assertEquals(List.of("[CLS]", "hello", "world", "[SEP]"), tokenizer.tokens("Hello world"));
  }

  @Test
  void longTextIsTruncatedToMaxLengthAndNotPadded() {
    List<Map<String, long[]>> all =
        tokenizer.encodeAll(List.of("one two three four five six seven eight nine ten", "hi"));
    long[] ids = all.get(0).get(TextTokenizer.INPUT_IDS);
    assertEquals(8, ids.length);
    assertEquals(101, ids[0]);
    assertEquals(102, ids[7]);
    assertEquals(3, all.get(1).get(TextTokenizer.INPUT_IDS).length);
  }
}
