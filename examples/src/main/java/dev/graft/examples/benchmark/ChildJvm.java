package dev.graft.examples.benchmark;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs a benchmark's configuration in a child JVM on the same class path (for a peak RSS of its own,
 * or a speed figure that what ran before it in the same process cannot bias), its stderr passed
 * through, and returns what it printed after a given prefix.
 */
final class ChildJvm {
  /** The child's thread stack: ONNX Runtime's session set-up overflows the default one (the child crashes). */
  private static final String STACK = "-Xss64m";

  private ChildJvm() {}

  /**
   * Runs {@code main} with {@code args}; returns the rest of the last stdout line starting with
   * {@code prefix}.
   *
   * @throws IllegalStateException when the child fails or prints no such line ({@code what} names it)
   */
  static String run(Class<?> main, List<String> args, String prefix, String what)
      throws IOException, InterruptedException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    List<String> command = new ArrayList<>(List.of(java, STACK, "-cp", classPath(), main.getName()));
    command.addAll(args);
    Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
    String value = null;
    try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      for (String line = r.readLine(); line != null; line = r.readLine()) {
        if (line.startsWith(prefix)) {
          value = line.substring(prefix.length());
        }
      }
    }
    if (p.waitFor() != 0 || value == null) {
      throw new IllegalStateException("the child for " + what + " failed (exit " + p.exitValue() + ")");
    }
    return value;
  }

  /** The class path this program runs on: under {@code exec:java}, the context class loader's URLs. */
  private static String classPath() {
    if (Thread.currentThread().getContextClassLoader() instanceof URLClassLoader u && u.getURLs().length > 0) {
      List<String> entries = new ArrayList<>();
      for (URL url : u.getURLs()) {
        try {
          entries.add(Path.of(url.toURI()).toString());
        } catch (java.net.URISyntaxException e) {
          throw new IllegalStateException("class path entry " + url + " is not a file", e);
        }
      }
      return String.join(File.pathSeparator, entries);
    }
    return System.getProperty("java.class.path");
  }
}
