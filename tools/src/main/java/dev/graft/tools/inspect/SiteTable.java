package dev.graft.tools.inspect;

import dev.graft.compiler.kinds.AttentionSite;
import dev.graft.compiler.kinds.EmbeddingSite;
import dev.graft.compiler.kinds.HostTensorSite;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.ModuleSite;
import dev.graft.compiler.kinds.OutputSite;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SpanSite;
import dev.graft.compiler.ir.Graph;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * Sites as a table: one row per site, grouped by layer (in the order layers first appear, sites
 * in graph order within a layer), with the columns of the site's type: a linear layer's node,
 * weight shape {@code [in, out]} and module path; an output's width and value; a feed-forward
 * span's widths and input; an attention block's heads, width, key and value projections; an
 * embedding's table; a host tensor's shape. The layer is written on the first row of its group
 * ({@code -} for sites outside any layer).
 */
final class SiteTable {
  private SiteTable() {}

  /** Prints {@code sites} (found in {@code graph}) as a table, each line starting with {@code indent}. */
  static void print(List<? extends Site> sites, Graph graph, PrintStream out, String indent) {
    if (sites.isEmpty()) {
      return;
    }
    Class<?> type = sites.get(0).getClass();
    boolean uniform = sites.stream().allMatch(s -> s.getClass() == type);
    List<String> header = new ArrayList<>();
    header.add("layer");
    header.addAll(uniform ? header(sites.get(0)) : List.of("node", "module"));
    TextTable table = new TextTable(header);
    for (List<Site> group : byLayer(sites).values()) {
      boolean first = true;
      for (Site s : group) {
        List<String> row = new ArrayList<>();
        row.add(first ? layer(s.layer()) : "");
        row.addAll(uniform ? cells(s, graph) : List.of(s.node(), s.modulePath()));
        table.add(row);
        first = false;
      }
    }
    table.print(out, indent);
  }

  /** The sites by layer, layers in the order they first appear. */
  private static Map<String, List<Site>> byLayer(List<? extends Site> sites) {
    Map<String, List<Site>> groups = new LinkedHashMap<>();
    for (Site s : sites) {
      groups.computeIfAbsent(layer(s.layer()), k -> new ArrayList<>()).add(s);
    }
    return groups;
  }

  /** The distinct layer indices of {@code sites}, ascending. */
  static List<Integer> layers(List<? extends Site> sites) {
    return sites.stream().map(Site::layer).filter(OptionalInt::isPresent).map(OptionalInt::getAsInt)
        .distinct().sorted().toList();
  }

  private static String layer(OptionalInt layer) {
    return layer.isPresent() ? Integer.toString(layer.getAsInt()) : "-";
  }

  private static List<String> header(Site site) {
    if (site instanceof LinearSite) {
      return List.of("node", "[in, out]", "module");
    } else if (site instanceof OutputSite) {
      return List.of("node", "width", "output value");
    } else if (site instanceof SpanSite) {
      return List.of("node (last linear layer)", "[in, out]", "input value", "module");
    } else if (site instanceof AttentionSite) {
      return List.of("node (scores)", "heads", "width", "keys", "values", "module");
    } else if (site instanceof EmbeddingSite) {
      return List.of("node", "[vocab, hidden]", "table", "module");
    } else if (site instanceof HostTensorSite) {
      return List.of("node (tensor)", "shape", "host initializer");
    } else if (site instanceof ModuleSite) {
      return List.of("node", "[in, out]", "weight", "bias");
    }
    return List.of("node", "module");
  }

  private static List<String> cells(Site site, Graph graph) {
    if (site instanceof LinearSite s) {
      return List.of(s.node(), shape(s.in(), s.out()), s.modulePath());
    } else if (site instanceof OutputSite s) {
      return List.of(s.node(), Long.toString(s.size()), s.value());
    } else if (site instanceof SpanSite s) {
      return List.of(s.node(), shape(s.in(), s.out()), s.input(), s.modulePath());
    } else if (site instanceof AttentionSite s) {
      return List.of(s.node(), s.heads() > 0 ? Long.toString(s.heads()) : "?", Long.toString(s.hidden()),
          s.key().moduleName(), s.value().moduleName(), s.modulePath());
    } else if (site instanceof EmbeddingSite s) {
      return List.of(s.node(), shape(s.vocab(), s.hidden()), s.table(), s.modulePath());
    } else if (site instanceof HostTensorSite s) {
      TensorProto t = graph.initializers().get(s.initializer());
      return List.of(s.node(), t == null ? "?" : t.getDimsList().toString(),
          s.initializer().equals(s.node()) ? "" : s.initializer());
    } else if (site instanceof ModuleSite s) {
      TensorProto w = graph.initializers().get(s.weight());
      String shape = w == null || w.getDimsCount() != 2 ? "?"
          : s.outFirst() ? shape(w.getDims(1), w.getDims(0)) : shape(w.getDims(0), w.getDims(1));
      return List.of(s.node(), shape, s.weight(), s.bias().orElse("-"));
    }
    return List.of(site.node(), site.modulePath());
  }

  private static String shape(long first, long second) {
    return "[" + first + ", " + second + "]";
  }
}
