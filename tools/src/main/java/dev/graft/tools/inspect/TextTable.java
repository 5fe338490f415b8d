package dev.graft.tools.inspect;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/** Rows of text cells printed as left-aligned columns two spaces apart, under a header row. */
final class TextTable {
  private final List<List<String>> rows = new ArrayList<>();
  private final int columns;

  TextTable(List<String> header) {
    columns = header.size();
    rows.add(List.copyOf(header));
  }

  /** Adds a row; it must have as many cells as the header. */
  void add(List<String> cells) {
    if (cells.size() != columns) {
      throw new IllegalArgumentException("expected " + columns + " cells, got " + cells.size() + ": " + cells);
    }
    rows.add(List.copyOf(cells));
  }

  /** Prints the header and the rows, each line starting with {@code indent}, without trailing spaces. */
  void print(PrintStream out, String indent) {
    int[] width = new int[columns];
    for (List<String> row : rows) {
      for (int c = 0; c < columns; c++) {
        width[c] = Math.max(width[c], row.get(c).length());
      }
    }
    for (List<String> row : rows) {
      StringBuilder line = new StringBuilder(indent);
      for (int c = 0; c < columns; c++) {
        line.append(row.get(c));
        if (c < columns - 1) {
          line.append(" ".repeat(width[c] - row.get(c).length() + 2));
        }
      }
      out.println(line.toString().stripTrailing());
    }
  }
}
