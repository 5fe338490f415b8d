package dev.graft;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.diag.ErrorCode;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Both error catalogs, compile time ({@link ErrorCode}) and run time ({@link RuntimeErrorCode}):
 * every code has a row in {@code spec/README.md} and at least one test, in any module, that
 * mentions it (its code, e.g. {@code [GRAFT012]} or {@code GRAFT-R003}, or its constant, e.g.
 * {@code ErrorCode.OPTION_OUT_OF_RANGE}).
 */
class ErrorCatalogTest {
  private static String reference;
  private static String tests;

  @BeforeAll
  static void read() throws IOException {
    Path root = Path.of("").toAbsolutePath();
    while (!Files.isRegularFile(root.resolve("spec/README.md"))) {
      root = root.getParent();
      assertTrue(root != null, "no spec/README.md above the working directory");
    }
    reference = Files.readString(root.resolve("spec/README.md"), StandardCharsets.UTF_8);
    Path self = root.resolve("integration/src/test/java/dev/graft/ErrorCatalogTest.java");
    StringBuilder all = new StringBuilder();
    try (Stream<Path> files = Files.walk(root)) {
      for (Path f : files.filter(p -> isTestSource(p) && !p.equals(self)).toList()) {
        all.append(Files.readString(f, StandardCharsets.UTF_8)).append('\n');
      }
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
    tests = all.toString();
    assertTrue(tests.length() > 100_000, "found the test sources of the modules (" + tests.length() + " chars)");
  }

  private static boolean isTestSource(Path p) {
    String s = p.toString().replace('\\', '/');
    return s.contains("/src/test/") && !s.contains("/target/") && (s.endsWith(".java") || s.endsWith(".kt"));
  }

  private static boolean hasRow(String code) {
    return Pattern.compile("^\\| " + Pattern.quote(code) + " \\| \\S", Pattern.MULTILINE).matcher(reference).find();
  }

  private static boolean mentioned(String code, String constant) {
    return Pattern.compile(Pattern.quote(code) + "(?!\\d)").matcher(tests).find()
        || Pattern.compile("\\b" + Pattern.quote(constant) + "\\b").matcher(tests).find();
  }

  @Test
  void everyCompileTimeCodeHasARowAndATest() {
    List<String> missing = new ArrayList<>();
    for (ErrorCode c : ErrorCode.values()) {
      if (!hasRow(c.code())) {
        missing.add(c.code() + " (" + c + ") has no row in spec/README.md");
      }
      if (!mentioned(c.code(), "ErrorCode." + c.name())) {
        missing.add(c.code() + " (" + c + ") is mentioned by no test");
      }
    }
    assertEquals(List.of(), missing);
  }

  @Test
  void everyRunTimeCodeHasItsRowAndATest() {
    List<String> missing = new ArrayList<>();
    for (RuntimeErrorCode c : RuntimeErrorCode.values()) {
      String row = "| " + c.code() + " | " + c.summary() + " |";
      if (!reference.contains(row)) {
        missing.add(c.code() + " (" + c + ") has no row " + row + " in spec/README.md");
      }
      if (!mentioned(c.code(), "RuntimeErrorCode." + c.name())) {
        missing.add(c.code() + " (" + c + ") is mentioned by no test");
      }
    }
    assertEquals(List.of(), missing);
  }

  /** The checks above can fail: a made-up code has neither a row nor a test. */
  @Test
  void anUnknownCodeIsFound() {
    assertTrue(hasRow("GRAFT012") && mentioned("GRAFT012", "ErrorCode.OPTION_OUT_OF_RANGE"));
    assertTrue(!hasRow("GRAFT098") && !mentioned("GRAFT098", "ErrorCode.NO_SUCH_CODE"));
  }
}
