package dev.graft.compiler.spec;

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
 * Whitespace between tokens is ignored; {@link CompositionBlock#toString()} prints a block back
 * canonically (one space after each comma and colon), and parsing that gives the same block. What
 * the grammar accepts may still be invalid (unknown names, a weight where none belongs); the
 * compiler's composition check reports that. The processor parses {@code @Compose} values here,
 * once; the builder makes blocks directly.
 */
public final class CompositionParser {
  /** A syntax error: the 1-based column, what was expected there and what was found. */
  public static final class SyntaxError extends Exception {
    private static final long serialVersionUID = 1L;
    private final int column;
    private final String expected;
    private final String found;

    SyntaxError(int column, String expected, String found) {
      super("column " + column + ": expected " + expected + ", found " + found, null, false, false);
      this.column = column;
      this.expected = expected;
      this.found = found;
    }

    /** The 1-based column of the text where the error is. */
    public int column() {
      return column;
    }

    /** What was expected there, e.g. {@code "',' or ')'"}. */
    public String expected() {
      return expected;
    }

    /** What was found there, e.g. {@code "'b'"} or {@code "the end"}. */
    public String found() {
      return found;
    }
  }

  private static final String OPERATORS =
      Arrays.stream(Operator.values()).map(Operator::keyword).collect(Collectors.joining(", ", "one of ", ""));

  /** What a composition must start with: {@code "a block (one of stack, parallel, average, fuse, split)"}. */
  public static final String BLOCK_EXPECTED = "a block (" + OPERATORS + ")";

  private final String text;
  private int pos;

  private CompositionParser(String text) {
    this.text = text;
  }

  /** The block {@code text} spells. */
  public static Combination parse(String text) throws SyntaxError {
    CompositionParser p = new CompositionParser(text);
    p.skipSpace();
    int start = p.pos;
    String word = p.identifier();
    if (word == null) {
      throw p.error(BLOCK_EXPECTED);
    }
    Combination block = p.blockAfter(word, start);
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
      throw new SyntaxError(start + 1, BLOCK_EXPECTED, "'" + word + "'");
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
