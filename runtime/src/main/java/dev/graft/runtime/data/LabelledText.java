package dev.graft.runtime.data;

import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A sentence with an integer class label, read from TSV: one example per line,
 * {@code label<TAB>text}, UTF-8, no header.
 *
 * @param label class index (>= 0)
 * @param text the sentence
 */
public record LabelledText(int label, String text) {
  public LabelledText {
    if (label < 0) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "label must be >= 0, got " + label);
    }
  }

  /** Reads a TSV classpath resource (absolute name without a leading slash). */
  public static List<LabelledText> readTsv(ClassLoader loader, String resource) {
    InputStream in = loader.getResourceAsStream(resource);
    if (in == null) {
      throw new GraftException(RuntimeErrorCode.IO, "data resource '" + resource + "' is not on the classpath");
    }
    try (Reader r = new InputStreamReader(in, StandardCharsets.UTF_8)) {
      return parseTsv(resource, r);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + resource + ": " + e, e);
    }
  }

  /** Reads a TSV classpath resource with the context (or this class's) class loader. */
  public static List<LabelledText> readTsv(String resource) {
    ClassLoader l = Thread.currentThread().getContextClassLoader();
    return readTsv(l != null ? l : LabelledText.class.getClassLoader(), resource);
  }

  /** Reads a TSV file. */
  public static List<LabelledText> readTsv(Path file) {
    try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
      return parseTsv(file.toString(), r);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read " + file + ": " + e, e);
    }
  }

  /** Parses TSV text; {@code source} names it in errors. Blank lines are skipped. */
  public static List<LabelledText> parseTsv(String source, Reader reader) throws IOException {
    BufferedReader br = reader instanceof BufferedReader b ? b : new BufferedReader(reader);
    List<LabelledText> out = new ArrayList<>();
    String line;
    int n = 0;
    while ((line = br.readLine()) != null) {
      n++;
      if (line.isBlank()) {
        continue;
      }
      int tab = line.indexOf('\t');
      if (tab <= 0) {
        throw new FormatException(source, "line " + n + ": expected 'label<TAB>text'");
      }
      int label;
      try {
        label = Integer.parseInt(line.substring(0, tab).strip());
      } catch (NumberFormatException e) {
        throw new FormatException(source, "line " + n + ": label '" + line.substring(0, tab) + "' is not an integer");
      }
      if (label < 0) {
        throw new FormatException(source, "line " + n + ": label " + label + " is negative");
      }
      out.add(new LabelledText(label, line.substring(tab + 1)));
    }
    return out;
  }
}
