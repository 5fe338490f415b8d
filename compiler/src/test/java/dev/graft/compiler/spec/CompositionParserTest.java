package dev.graft.compiler.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.graft.compiler.spec.CompositionBlock.AdapterRef;
import dev.graft.compiler.spec.CompositionBlock.Combination;
import dev.graft.compiler.spec.CompositionBlock.Member;
import dev.graft.compiler.spec.CompositionBlock.Operator;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Graft's composition syntax: text to typed blocks and back (canonically), and each syntax error's column. */
class CompositionParserTest {
  private static Member name(String name) {
    return new Member(new AdapterRef(name), null);
  }

  private static Member weighted(String name, double weight) {
    return new Member(new AdapterRef(name), weight);
  }

  @Test
  void parsesNestedBlocksAndWeightsIntoTheTree() throws CompositionParser.SyntaxError {
    Combination fuse = new Combination(Operator.FUSE, List.of(name("a"), name("b")));
    assertEquals(new Combination(Operator.STACK, List.of(name("lang"), new Member(fuse, null))),
        CompositionParser.parse("stack(lang, fuse(a, b))"));
    assertEquals(new Combination(Operator.AVERAGE, List.of(weighted("a", 0.25), weighted("b", 0.75))),
        CompositionParser.parse("  average( a:.25 ,b :0.75 )  "));
    assertEquals(new Combination(Operator.SPLIT, List.of(weighted("a", 192), weighted("b_2", 192))),
        CompositionParser.parse("split(a: 192, b_2: 1.92e2)"));
  }

  @Test
  void printsCanonicallyAndReadsBackWhatItPrints() throws CompositionParser.SyntaxError {
    for (String text : List.of("stack(lang,fuse(a,b))", "average( a:.25 ,b :0.75 )", "split(a: 192.0, b: 192)",
        "parallel(a, stack(b, c), d)", "average(a: 1.0E-7, b: 0.9999999)")) {
      Combination parsed = CompositionParser.parse(text);
      assertEquals(parsed, CompositionParser.parse(parsed.toString()), text);
    }
    assertEquals("stack(lang, fuse(a, b))", CompositionParser.parse("stack(lang,fuse(a,b))").toString());
    assertEquals("average(a: 0.25, b: 0.75)", CompositionParser.parse("average( a:.25 ,b :0.75 )").toString());
    assertEquals("split(a: 192, b: 192)", CompositionParser.parse("split(a: 192.0, b: 192)").toString());
  }

  private static CompositionParser.SyntaxError error(String text) {
    return assertThrows(CompositionParser.SyntaxError.class, () -> CompositionParser.parse(text));
  }

  @Test
  void syntaxErrorsGiveTheColumnWhatWasExpectedAndWhatWasFound() {
    CompositionParser.SyntaxError end = error("stack(a, b");
    assertEquals(11, end.column());
    assertEquals("',' or ')'", end.expected());
    assertEquals("the end", end.found());
    CompositionParser.SyntaxError chain = error("chain(a, b)");
    assertEquals("column 1: expected a block (one of stack, parallel, average, fuse, split), found 'chain'",
        chain.getMessage());
    assertEquals(CompositionParser.BLOCK_EXPECTED, chain.expected());
    assertEquals("column 9: expected ',' or ')', found 'b'", error("stack(a b)").getMessage());
    assertEquals("column 1: expected a block (one of stack, parallel, average, fuse, split), found 'a'",
        error("a").getMessage());
    assertEquals("column 11: expected a number after ':', found ','", error("average(a:, b)").getMessage());
    assertEquals("column 13: expected the end of the composition, found 'x'", error("stack(a, b) x").getMessage());
    assertEquals("column 7: expected an adapter name or a block, found ')'", error("stack()").getMessage());
    assertEquals("column 4: expected a block (one of stack, parallel, average, fuse, split), found the end",
        error("   ").getMessage());
  }
}
