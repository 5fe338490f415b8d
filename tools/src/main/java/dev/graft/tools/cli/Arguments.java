package dev.graft.tools.cli;

import dev.graft.runtime.AdapterGraphs;
import java.nio.file.Path;
import java.util.List;

/**
 * Reading a command line's options: each reader names the option and what it expected when the
 * value is missing or malformed (an {@link IllegalArgumentException} the commands print with their
 * usage).
 */
public final class Arguments {
  private Arguments() {}

  /** Takes the value after {@code option} off the front of {@code rest}. */
  public static String value(List<String> rest, String option) {
    if (rest.isEmpty() || rest.get(0).startsWith("--")) {
      throw new IllegalArgumentException(option + " needs a value");
    }
    return rest.remove(0);
  }

  /** {@code v}, the value of {@code option}, as an integer. */
  public static int integer(String v, String option) {
    try {
      return Integer.parseInt(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(option + " must be an integer, given '" + v + "'");
    }
  }

  /** {@code v}, the value of {@code option}, as a long integer. */
  public static long longInteger(String v, String option) {
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(option + " must be an integer, given '" + v + "'");
    }
  }

  /** {@code v}, the value of {@code option}, as a number. */
  public static double real(String v, String option) {
    try {
      return Double.parseDouble(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(option + " must be a number, given '" + v + "'");
    }
  }

  /** The graft {@code DIR/NAME}: its graphs and manifest in folder {@code DIR} (the working folder when none). */
  public static AdapterGraphs graftFolder(String dirAndName) {
    Path p = Path.of(dirAndName);
    Path dir = p.getParent() == null ? Path.of(".") : p.getParent();
    return AdapterGraphs.fromDirectory(dir, p.getFileName().toString());
  }

  /** The graft {@code FOLDER/NAME} on the class path, e.g. {@code dev/graft/examples/sentiment/SentimentLora}. */
  public static AdapterGraphs graftResource(String folderAndName) {
    int slash = folderAndName.lastIndexOf('/');
    return AdapterGraphs.fromClasspath(Thread.currentThread().getContextClassLoader(),
        slash < 0 ? "" : folderAndName.substring(0, slash), folderAndName.substring(slash + 1));
  }
}
