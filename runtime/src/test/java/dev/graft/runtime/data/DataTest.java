package dev.graft.runtime.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.runtime.FormatException;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class DataTest {
  @Test
  void parsesTsvAndReportsBadLines() throws Exception {
    List<LabelledText> rows = LabelledText.parseTsv("t", new StringReader("1\tGreat food.\n\n0\tNot tasty, at all\t!\n"));
    assertEquals(List.of(new LabelledText(1, "Great food."), new LabelledText(0, "Not tasty, at all\t!")), rows);
    FormatException e =
        assertThrows(FormatException.class, () -> LabelledText.parseTsv("t.tsv", new StringReader("1\tok\nx\tbad\n")));
    assertTrue(e.getMessage().contains("t.tsv: line 2: label 'x' is not an integer"), e.getMessage());
  }

  @Test
  void splitIsSeededAndDisjoint() {
    List<Integer> all = java.util.stream.IntStream.range(0, 100).boxed().toList();
    Split<Integer> a = Split.of(all, 0.2, 7);
    assertEquals(80, a.train().size());
    assertEquals(20, a.heldOut().size());
    assertEquals(a, Split.of(all, 0.2, 7));
    assertNotEquals(a, Split.of(all, 0.2, 8));
    HashSet<Integer> union = new HashSet<>(a.train());
    union.addAll(a.heldOut());
    assertEquals(100, union.size());
  }

  @Test
  void batchPadsToTheLongestSequenceInTheBatch() {
    Batch b = Batch.of(List.of(
        new Example(Map.of("input_ids", new long[] {101, 7, 102}), 1),
        new Example(Map.of("input_ids", new long[] {101, 102}), 0)));
    assertArrayEquals(new long[] {101, 7, 102}, b.inputs().get("input_ids")[0]);
    assertArrayEquals(new long[] {101, 102, 0}, b.inputs().get("input_ids")[1]);
    assertArrayEquals(new long[] {1, 0}, b.labels());
  }

  /** The example's data files (examples module): 1000 sentences per source, 500 per label. */
  @Test
  void sentimentDataFilesAreComplete() {
    Path dir = Path.of("../examples/src/main/resources/dev/graft/examples/sentiment");
    Assumptions.assumeTrue(Files.isDirectory(dir), "examples module not beside runtime");
    for (String source : List.of("imdb", "amazon", "yelp")) {
      List<LabelledText> rows = LabelledText.readTsv(dir.resolve(source + ".tsv"));
      assertEquals(1000, rows.size(), source);
      assertEquals(500, rows.stream().filter(r -> r.label() == 1).count(), source);
      assertEquals(500, rows.stream().filter(r -> r.label() == 0).count(), source);
      assertTrue(rows.stream().noneMatch(r -> r.text().isBlank()), source);
    }
  }
}
