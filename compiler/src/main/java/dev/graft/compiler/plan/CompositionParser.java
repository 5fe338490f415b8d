package dev.graft.compiler.plan;

import dev.graft.compiler.spec.CompositionBlock;
import dev.graft.compiler.spec.CompositionBlock.AdapterRef;
import dev.graft.compiler.spec.CompositionBlock.Combination;
import dev.graft.compiler.spec.CompositionBlock.Member;
import dev.graft.compiler.spec.CompositionBlock.Operator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * Parses Graft's composition syntax into a {@link CompositionBlock}:
 *
 * <pre>
 * composition := block
 * block       := operator "(" member ("," member)* ")"
 * operator    := "stack" | "parallel" | "average" | "fuse" | "split"
 * member      := (name | block) [":" number]
 * name        := [A-Za-z_][A-Za-z0-9_]*
 * </pre>
 *
 * Whitespace between tokens is ignored. What the grammar accepts may still be invalid (unknown
 * names, a weight where none belongs); the composition check reports that.
 */
final class CompositionParser {
  /** A syntax error: the 1-based column, what was expected there and what was found. */
  static final class SyntaxError extends Exception {
    private static final long serialVersionUID = 1L;
    final int column;
    final String expected;
    final String found;

    SyntaxError(int column, String expected, String found) {
      super("column " + column + ": expected " + expected + ", found " + found, null, false, false);
      this.column = column;
      this.expected = expected;
      this.found = found;
    }
  }

  private static final String OPERATORS =
      Arrays.stream(Operator.values()).map(Operator::keyword).collect(Collectors.joining(", ", "one of ", ""));

  private final String text;
  private int pos;

  private CompositionParser(String text) {
    this.text = text;
  }

  /** The block {@code text} spells. */
  static CompositionBlock parse(String text) throws SyntaxError {
    CompositionParser p = new CompositionParser(text);
    p.skipSpace();
    int start = p.pos;
    String word = p.identifier();
    if (word == null) {
      throw p.error("a block (" + OPERATORS + ")");
    }
    CompositionBlock block = p.blockAfter(word, start);
    p.skipSpace();
    if (p.pos < text.length()) {
      throw p.error("the end of the composition");
    }
    return block;
  }

  /** The block whose operator {@code word} (read from {@code start}) was just read. */
  private Combination blockAfter(String word, int start) throws SyntaxError {
    Operator op = operator(word);
    if (op == null) {
      throw new SyntaxError(start + 1, "a block (" + OPERATORS + ")", "'" + word + "'");
    }
    expect('(', "'(' after " + word);
    List<Member> members = new ArrayList<>();
    do {
      members.add(member());
    } while (accept(','));
    expect(')', "',' or ')'");
    return new Combination(op, members);
  }

  private Member member() throws SyntaxError {
    skipSpace();
    int start = pos;
    String word = identifier();
    if (word == null) {
      throw error("an adapter name or a block");
    }
    skipSpace();
    CompositionBlock block = pos < text.length() && text.charAt(pos) == '(' ? blockAfter(word, start) : new AdapterRef(word);
    Double weight = null;
    if (accept(':')) {
      weight = number();
    }
    return new Member(block, weight);
  }

  private static @Nullable Operator operator(String word) {
    for (Operator o : Operator.values()) {
      if (o.keyword().equals(word)) {
        return o;
      }
    }
    return null;
  }

  private @Nullable String identifier() {
    int start = pos;
    if (pos < text.length() && (Character.isLetter(text.charAt(pos)) || text.charAt(pos) == '_')) {
      pos++;
      while (pos < text.length() && (Character.isLetterOrDigit(text.charAt(pos)) || text.charAt(pos) == '_')) {
        pos++;
      }
    }
    return pos > start ? text.substring(start, pos) : null;
  }

  private double number() throws SyntaxError {
    skipSpace();
    int start = pos;
    while (pos < text.length() && "0123456789.eE+-".indexOf(text.charAt(pos)) >= 0) {
      pos++;
    }
    try {
      if (pos == start) {
        throw new NumberFormatException();
      }
      return Double.parseDouble(text.substring(start, pos));
    } catch (NumberFormatException e) {
      pos = start;
      throw error("a number after ':'");
    }
  }

  private boolean accept(char c) {
    skipSpace();
    if (pos < text.length() && text.charAt(pos) == c) {
      pos++;
      return true;
    }
    return false;
  }

  private void expect(char c, String what) throws SyntaxError {
    if (!accept(c)) {
      throw error(what);
    }
  }

  private void skipSpace() {
    while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
      pos++;
    }
  }

  private SyntaxError error(String expected) {
    skipSpace();
    String found = pos >= text.length() ? "the end" : "'" + text.charAt(pos) + "'";
    return new SyntaxError(pos + 1, expected, found);
  }
}
