package dev.graft.compiler.plan;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.kinds.SiteException;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import java.util.stream.Collectors;
import org.jspecify.annotations.Nullable;

/**
 * How an adapter declaration's selector and layer filter choose sites of a host: the kind's
 * candidate sites, the target (the declaration's, else the kind's default), the sites whose node
 * names it matches in full and whose layers the filter names. The compiler's validation pass and
 * the host inspector both select through {@link #select}, so what the inspector shows is what a
 * compilation takes.
 */
public final class SiteSelection {
  private SiteSelection() {}

  /**
   * The outcome of selecting the sites of one declaration.
   *
   * @param target the selector used: the declaration's target, else the kind's default, else
   *     {@code .*} (every candidate)
   * @param candidates every site of the host the kind can attach to, in graph order (empty when
   *     the kind found none)
   * @param sites the candidates the selector and layer filter take, in graph order; empty
   *     exactly when {@code error} is present
   * @param error why the declaration takes no site (GRAFT060 no candidate site, GRAFT010 invalid
   *     selector, GRAFT016 no such layer, GRAFT011 no match with the nearest names), or null
   */
  public record Result(String target, List<? extends Site> candidates, List<? extends Site> sites,
      @Nullable Diagnostic error) {
    public Result {
      candidates = List.copyOf(candidates);
      sites = List.copyOf(sites);
    }
  }

  /**
   * The target a declaration selects with: its own, else its kind's default for its options,
   * else {@code .*}.
   *
   * @param spec the declaration, options checked and defaulted (a kind's default may depend on them)
   */
  public static String target(AdapterKind kind, AdapterSpec spec) {
    String target = spec.target().isEmpty() ? kind.defaultTarget(spec) : spec.target();
    return target.isEmpty() ? ".*" : target;
  }

  /**
   * Selects the sites of {@code spec}, a declaration of {@code kind} with options checked and
   * defaulted, among the candidate sites of {@code graph} (the host as imported and shape-inferred).
   * Errors carry the declaration's source and name {@code hostName}.
   */
  public static Result select(AdapterKind kind, AdapterSpec spec, Graph graph, String hostName) {
    String target = target(kind, spec);
    List<? extends Site> candidates;
    try {
      candidates = kind.candidates(graph);
    } catch (SiteException e) {
      return failed(target, List.of(),
          Diagnostic.of(e.code(), spec.source(), null, kind.displayName(), hostName, e.getMessage()));
    }
    Pattern pattern;
    try {
      pattern = Pattern.compile(target);
    } catch (PatternSyntaxException e) {
      return failed(target, candidates,
          Diagnostic.of(ErrorCode.SELECTOR_INVALID, spec.source(), "target", target, e.getDescription()));
    }
    TreeSet<Integer> hostLayers = new TreeSet<>();
    candidates.forEach(s -> s.layer().ifPresent(hostLayers::add));
    List<Integer> badLayers = spec.layers().stream().filter(l -> !hostLayers.contains(l)).toList();
    if (!badLayers.isEmpty()) {
      return failed(target, candidates,
          Diagnostic.of(ErrorCode.LAYERS_INVALID, spec.source(), "layers", badLayers, hostName, hostLayers));
    }
    List<? extends Site> matched = candidates.stream()
        .filter(s -> pattern.matcher(s.node()).matches())
        .filter(s -> spec.layers().isEmpty()
            || (s.layer().isPresent() && spec.layers().contains(s.layer().getAsInt())))
        .toList();
    if (matched.isEmpty()) {
      String where = spec.layers().isEmpty() ? "" : " in layers " + spec.layers();
      return failed(target, candidates, Diagnostic.of(ErrorCode.SELECTOR_MATCHES_NOTHING, spec.source(), "target",
          target, kind.siteDescription(), hostName, where, nearest(target, candidates, graph, pattern)));
    }
    return new Result(target, candidates, matched, null);
  }

  private static Result failed(String target, List<? extends Site> candidates, Diagnostic error) {
    return new Result(target, candidates, List.of(), error);
  }

  /**
   * The three site names closest to the selector text, by edit distance; where the host has no
   * site of the kind, the closest names of its matrix-product nodes instead. A node among them, or
   * one the selector matches, that is no site says why (an int8 MatMulInteger, a computed weight).
   */
  private static String nearest(String selector, List<? extends Site> sites, Graph graph, Pattern pattern) {
    Set<String> siteNodes = sites.stream().map(Site::node).collect(Collectors.toSet());
    List<String> pool = new ArrayList<>(siteNodes);
    if (pool.isEmpty()) {
      graph.nodes().stream().filter(n -> PRODUCTS.contains(n.opType())).forEach(n -> pool.add(n.name()));
    }
    List<String> names = pool.stream()
        .distinct()
        .sorted(Comparator.comparingInt((String s) -> distance(selector, s)).thenComparing(s -> s))
        .limit(3)
        .collect(Collectors.toCollection(ArrayList::new));
    graph.nodes().stream().map(Node::name)
        .filter(n -> pattern.matcher(n).matches() && !names.contains(n) && notASite(graph, n) != null)
        .limit(3).forEach(names::add);
    return names.stream().map(n -> {
      String why = siteNodes.contains(n) ? null : notASite(graph, n);
      return why == null ? n : n + " (" + why + ")";
    }).collect(Collectors.joining(", "));
  }

  /** Matrix products a linear site could be, or that a user may take for one. */
  private static final Set<String> PRODUCTS = Set.of("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul");

  /** Why the node named {@code name} is no linear site, where it looks like one; null otherwise. */
  private static @Nullable String notASite(Graph graph, String name) {
    Node n = graph.nodes().stream().filter(x -> x.name().equals(name)).findFirst().orElse(null);
    if (n == null || !PRODUCTS.contains(n.opType())) {
      return null;
    }
    if (n.opType().equals("MatMulInteger")) {
      return dev.graft.compiler.ir.QuantizedMatMul.at(graph, name) != null
          ? "an int8 linear layer: a kind that reads or trains the dense host weight cannot take it"
          : "MatMulInteger of '" + n.input(1) + "' not in the int8 linear pattern DynamicQuantizeLinear → MatMulInteger"
              + " (int8 [in, out] weight) → Cast → Mul by the scales, whose inner values nothing else reads";
    }
    if (n.opType().equals("QLinearMatMul")) {
      return "QLinearMatMul of '" + n.input(3) + "': only ONNX Runtime's dynamic quantization (DynamicQuantizeLinear,"
          + " MatMulInteger) is taken as an int8 linear site; QLinearMatMul's output is quantized too";
    }
    if (n.inputs().size() < 2) {
      return null;
    }
    String w = n.input(1);
    if (graph.initializers().containsKey(w)) {
      int rank = graph.initializers().get(w).getDimsCount();
      return rank == 2 ? null : "its weight '" + w + "' is " + rank + "-D, a linear site's is 2-D";
    }
    Node producer = graph.producer(w);
    return "its weight '" + w + "' is computed" + (producer == null ? "" : " by " + producer.opType() + " '"
        + producer.name() + "'") + ", not a host initializer";
  }

  private static int distance(String a, String b) {
    int[] prev = new int[b.length() + 1];
    int[] cur = new int[b.length() + 1];
    for (int j = 0; j <= b.length(); j++) {
      prev[j] = j;
    }
    for (int i = 1; i <= a.length(); i++) {
      cur[0] = i;
      for (int j = 1; j <= b.length(); j++) {
        int cost = a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1;
        cur[j] = Math.min(Math.min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + cost);
      }
      int[] t = prev;
      prev = cur;
      cur = t;
    }
    return prev[b.length()];
  }
}
