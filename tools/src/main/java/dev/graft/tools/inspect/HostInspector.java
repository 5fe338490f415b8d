package dev.graft.tools.inspect;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.LinearSite;
import dev.graft.compiler.kinds.Site;
import dev.graft.compiler.plan.DeclaredOptions;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;
import dev.graft.compiler.plan.SiteSelection;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxImport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * A command-line tool that shows what adapters can attach to in a host model, so selectors can be
 * written without reading the ONNX graph:
 *
 * <ul>
 *   <li>{@code HostInspector <host>}: the host's inputs and outputs with their shapes, its opset,
 *       parameter count and layers, then every adapter kind's candidate sites grouped by layer
 *       (kinds with the same sites listed together, and the sites the compiler would refuse, with
 *       its reason: one real compile of the group's first kind on all its sites; kinds that find
 *       none, with the reason);
 *   <li>{@code HostInspector <host> --kind lora [--select <regex>] [--layers 0,1] [--option
 *       rank=4]}: the sites that declaration takes, selected by the compiler's own {@link
 *       SiteSelection} (the kind's default target when {@code --select} is left out), or the
 *       compiler's error when it takes none (GRAFT011 with the nearest node names); then the
 *       declaration is compiled for real (with a task the host can take) and the sites the
 *       compiler would refuse are listed with its reason (exit status 1);
 *   <li>{@code HostInspector <host> --select <regex>}: the sites of every site type the selector
 *       takes.
 * </ul>
 *
 * <p>The host is a file path or a class-path resource name, as in {@code @Graft(host = …)}. See
 * {@link InspectorArguments#USAGE} for the arguments and exit status.
 */
public final class HostInspector {
  /** Exit status: sites were listed, or the declaration takes sites. */
  public static final int OK = 0;
  /** Exit status: the declaration takes no site, or the compiler would reject it. */
  public static final int REJECTED = 1;
  /** Exit status: bad arguments, or a host that cannot be found or read. */
  public static final int USAGE = 2;

  private final PrintStream out;
  private final PrintStream err;

  private HostInspector(PrintStream out, PrintStream err) {
    this.out = out;
    this.err = err;
  }

  public static void main(String[] args) {
    int status = run(args, System.out, System.err);
    System.out.flush();
    if (status != OK) {
      System.exit(status);
    }
  }

  /**
   * Runs the inspector on {@code args}, writing the report to {@code out} and errors to {@code
   * err}; resources are looked up with the thread's context class loader.
   *
   * @return the exit status: {@link #OK}, {@link #REJECTED} or {@link #USAGE}
   */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    ClassLoader context = Thread.currentThread().getContextClassLoader();
    return new HostInspector(out, err).run(args, context != null ? context : HostInspector.class.getClassLoader());
  }

  private int run(String[] args, ClassLoader loader) {
    InspectorArguments arguments;
    try {
      arguments = InspectorArguments.parse(args);
    } catch (InspectorArguments.Invalid e) {
      err.println("error: " + e.getMessage());
      err.println("(--help prints the usage)");
      return USAGE;
    }
    if (arguments.help()) {
      out.println(InspectorArguments.USAGE);
      return OK;
    }
    AdapterKind kind = null;
    if (arguments.kind() != null) {
      kind = AdapterKinds.byId(arguments.kind()).orElse(null);
      if (kind == null) {
        error(Diagnostic.of(ErrorCode.ADAPTER_KIND_UNKNOWN, null, null, arguments.kind(), kindIds()));
        return USAGE;
      }
    }
    HostSource.Lookup lookup = HostSource.find(arguments.host(), loader);
    if (lookup instanceof HostSource.Failed failed) {
      error(failed.error());
      return USAGE;
    }
    HostModel host = ((HostSource.Found) lookup).host();
    Graph graph;
    try {
      graph = GraftCompiler.imported(host);
    } catch (RuntimeException e) {
      err.println("error: cannot import host model '" + host.name() + "' as the compiler does: " + e);
      return USAGE;
    }
    summary(host, graph);
    if (kind != null) {
      return declaration(kind, arguments, host, graph);
    }
    return arguments.selects() ? selectEverywhere(arguments, host, graph) : listSites(host, graph);
  }

  /**
   * The host's opset, parameter count (the elements of its floating-point initializers of rank 1
   * or more; scalars are constants), layers (the layer indices of its linear sites), inputs and
   * outputs with their types as shape inference found them.
   */
  private void summary(HostModel host, Graph graph) {
    int opset = OnnxImport.opset(host.model());
    String opsetNote = opset < OnnxImport.MIN_OPSET || opset > OnnxImport.MAX_OPSET
        ? "; Graft supports " + OnnxImport.MIN_OPSET + " to " + OnnxImport.MAX_OPSET + ": the compiler rejects this host"
        : "";
    List<String> newer = OnnxImport.newerThanOpset17(graph);
    if (!newer.isEmpty()) {
      opsetNote += "; ops with no opset-17 form (the compiler rejects them): " + newer;
    }
    long parameters = 0;
    int tensors = 0;
    for (TensorProto t : host.model().getGraph().getInitializerList()) {
      if (TensorType.of(t.getDataType()).isFloating() && t.getDimsCount() > 0) {
        parameters += Tensors.elementCount(t);
        tensors++;
      }
    }
    List<Integer> layers = SiteTable.layers(LinearSite.find(graph));
    Map<String, String> inputs = new LinkedHashMap<>();
    graph.inputs().forEach((name, type) -> inputs.put(name, type.toString()));
    Map<String, String> outputs = new LinkedHashMap<>();
    graph.outputs().forEach(name -> outputs.put(name, String.valueOf(graph.type(name))));
    int width = 0;
    for (String name : inputs.keySet()) {
      width = Math.max(width, name.length());
    }
    for (String name : outputs.keySet()) {
      width = Math.max(width, name.length());
    }
    out.println("host        " + host.name());
    out.println("opset       ai.onnx " + opset + opsetNote);
    out.printf(Locale.ROOT, "parameters  %,d in %d floating-point tensors%n", parameters, tensors);
    out.println("layers      " + (layers.isEmpty()
        ? "none found (no layer.N, layers.N, h.N or block.N in the linear layers' node names)"
        : layers.size() + " (" + layerText(layers) + ")"));
    printNamed("inputs      ", inputs, width);
    printNamed("outputs     ", outputs, width);
  }

  private void printNamed(String label, Map<String, String> values, int width) {
    String prefix = label;
    for (var e : values.entrySet()) {
      out.println(prefix + e.getKey() + " ".repeat(width - e.getKey().length() + 2) + e.getValue());
      prefix = " ".repeat(label.length());
    }
  }

  /** Kinds with the same candidate sites, and those sites. */
  private record SiteGroup(List<AdapterKind> kinds, List<? extends Site> sites) {
    String kindIds() {
      return kinds.stream().map(AdapterKind::id).collect(Collectors.joining(", "));
    }

    /**
     * What the sites are: the kind's site description, with the sites' type added when an earlier
     * group has the same description (LoRA's linear layers and full tuning's linear modules).
     */
    String siteName(List<SiteGroup> earlier) {
      String description = kinds.get(0).siteDescription();
      boolean repeated = earlier.stream().anyMatch(g -> g.kinds().get(0).siteDescription().equals(description));
      return description + " sites" + (repeated ? " (" + sites.get(0).getClass().getSimpleName() + ")" : "");
    }
  }

  /** A kind with no candidate site, and the compiler's error saying why. */
  private record NoSites(AdapterKind kind, Diagnostic error) {}

  /**
   * Every kind's candidate sites, kinds with equal candidate lists in one group (in the order
   * kinds are registered); kinds that find none in {@code failures}.
   */
  private static List<SiteGroup> groups(HostModel host, Graph graph, List<NoSites> failures) {
    List<SiteGroup> groups = new ArrayList<>();
    for (AdapterKind kind : AdapterKinds.all()) {
      AdapterSpec every = DeclaredOptions.check(kind, new AdapterSpec(kind.id(), ".*", List.of(), Map.of(), null)).spec();
      SiteSelection.Result r = SiteSelection.select(kind, every, graph, host.name());
      Diagnostic error = r.error();
      if (error != null) {
        failures.add(new NoSites(kind, error));
        continue;
      }
      SiteGroup same = groups.stream().filter(g -> g.sites().equals(r.candidates())).findFirst().orElse(null);
      if (same != null) {
        same.kinds().add(kind);
      } else {
        groups.add(new SiteGroup(new ArrayList<>(List.of(kind)), r.candidates()));
      }
    }
    return groups;
  }

  /** Without a declaration: every kind's candidate sites. */
  private int listSites(HostModel host, Graph graph) {
    List<NoSites> failures = new ArrayList<>();
    List<SiteGroup> groups = groups(host, graph, failures);
    for (SiteGroup group : groups) {
      List<Integer> layers = SiteTable.layers(group.sites());
      out.println();
      out.println(group.siteName(groups.subList(0, groups.indexOf(group))) + " · " + group.sites().size()
          + (layers.isEmpty() ? "" : " in layers " + layerText(layers)) + " · kinds " + group.kindIds());
      SiteTable.print(group.sites(), graph, out, "  ");
      AdapterKind first = group.kinds().get(0);
      AdapterSpec every = DeclaredOptions.check(first, new AdapterSpec(first.id(), ".*", List.of(), Map.of(), null)).spec();
      CompileCheck.Outcome compiled = CompileCheck.run(every, group.sites(), host, graph);
      if (compiled != null && !compiled.ok()) {
        refused(compiled, group.sites().size(), first.id() + " ");
        compiled.whole().forEach(d -> out.println("  " + d.message()));
      }
    }
    if (!failures.isEmpty()) {
      out.println();
      out.println("kinds with no site on this host");
      int width = failures.stream().mapToInt(f -> f.kind().id().length()).max().orElse(0);
      for (NoSites f : failures) {
        out.println("  " + f.kind().id() + " ".repeat(width - f.kind().id().length() + 2) + f.error().message());
      }
    }
    return OK;
  }

  /** The sites one declaration of {@code kind} takes, or the compiler's errors. */
  private int declaration(AdapterKind kind, InspectorArguments arguments, HostModel host, Graph graph) {
    Map<String, Object> given = new LinkedHashMap<>();
    arguments.options().forEach((name, text) -> given.put(name, typed(kind, name, text)));
    String target = arguments.select() == null ? "" : arguments.select();
    DeclaredOptions.Checked options =
        DeclaredOptions.check(kind, new AdapterSpec(kind.id(), target, arguments.layers(), given, null));
    AdapterSpec spec = options.spec();
    SiteSelection.Result selection = SiteSelection.select(kind, spec, graph, host.name());
    out.println();
    out.println(kind.displayName() + " (" + kind.id() + ") · target " + selection.target()
        + (target.isEmpty() ? " (the kind's default)" : "")
        + " · " + (spec.layers().isEmpty() ? "all layers" : "layers " + spec.layers()));
    if (!spec.options().isEmpty()) {
      out.println("options: " + spec.options().entrySet().stream()
          .map(e -> e.getKey() + "=" + AdapterOption.text(e.getValue())).collect(Collectors.joining(", ")));
    }
    List<Diagnostic> errors = new ArrayList<>(options.errors());
    Diagnostic noSites = selection.error();
    if (noSites != null) {
      errors.add(noSites);
    } else {
      out.println("takes " + selection.sites().size() + " of " + selection.candidates().size() + " "
          + kind.siteDescription() + " sites:");
      SiteTable.print(selection.sites(), graph, out, "  ");
      if (options.errors().isEmpty()) {
        errors.addAll(kind.diagnose(spec, selection.sites(), graph));
      }
      if (errors.isEmpty()) {
        CompileCheck.Outcome compiled = CompileCheck.run(spec, selection.sites(), host, graph);
        if (compiled != null && !compiled.ok()) {
          refused(compiled, selection.sites().size(), "");
          errors.addAll(compiled.refused().values());
          errors.addAll(compiled.whole());
        }
      }
    }
    errors.forEach(this::error);
    return errors.isEmpty() ? OK : REJECTED;
  }

  /**
   * The sites the real compile refuses, each with the compiler's reason; {@code kind} (the id and a
   * space, or empty) says which kind was compiled where the heading does not.
   */
  private void refused(CompileCheck.Outcome compiled, int sites, String kind) {
    if (compiled.refused().isEmpty()) {
      out.println("the compiler refuses the declaration (compiled " + kind + "with " + compiled.task() + "):");
      return;
    }
    out.println("the compiler refuses " + compiled.refused().size() + " of these " + sites + " sites (compiled "
        + kind + "with " + compiled.task() + "):");
    compiled.refused().forEach((node, d) -> out.println("  " + node + "  " + d.message()));
  }

  /** Without a kind: the sites of every site type the selector and layer filter take. */
  private int selectEverywhere(InspectorArguments arguments, HostModel host, Graph graph) {
    String target = arguments.select() == null || arguments.select().isEmpty() ? ".*" : arguments.select();
    List<NoSites> failures = new ArrayList<>();
    boolean any = false;
    Set<String> shown = new LinkedHashSet<>();
    List<SiteGroup> groups = groups(host, graph, failures);
    for (SiteGroup group : groups) {
      String siteName = group.siteName(groups.subList(0, groups.indexOf(group)));
      AdapterKind kind = group.kinds().get(0);
      AdapterSpec spec = DeclaredOptions.check(kind,
          new AdapterSpec(kind.id(), target, arguments.layers(), Map.of(), null)).spec();
      SiteSelection.Result r = SiteSelection.select(kind, spec, graph, host.name());
      out.println();
      Diagnostic error = r.error();
      if (error == null) {
        any = true;
        out.println(siteName + " · takes " + r.sites().size() + " of " + r.candidates().size()
            + " · kinds " + group.kindIds());
        SiteTable.print(r.sites(), graph, out, "  ");
      } else {
        out.println(siteName + " · takes none · kinds " + group.kindIds());
        out.println("  " + (shown.add(error.message()) ? error.message() : "(the same error)"));
      }
    }
    if (!any) {
      err.println("error: selector '" + target + "'" + (arguments.layers().isEmpty() ? "" : " in layers "
          + arguments.layers()) + " takes no site of any adapter kind on " + host.name());
      return REJECTED;
    }
    return OK;
  }

  /**
   * An option value as written on the command line converted to its option's type (integer,
   * number, true/false, comma-separated integers); the text itself when the kind has no such option or the text does not
   * convert, so the compiler's option check reports it.
   */
  private static Object typed(AdapterKind kind, String name, String text) {
    AdapterOption option = kind.options().stream().filter(o -> o.name().equals(name)).findFirst().orElse(null);
    if (option == null) {
      return text;
    }
    try {
      return switch (option.type()) {
        case INT -> Integer.parseInt(text.strip());
        case DOUBLE -> Double.parseDouble(text.strip());
        case BOOLEAN -> text.strip().equals("true") ? Boolean.TRUE : text.strip().equals("false") ? Boolean.FALSE : text;
        case STRING -> text;
        case INTS -> java.util.Arrays.stream(text.split(",")).map(t -> Integer.parseInt(t.strip())).toList();
      };
    } catch (NumberFormatException e) {
      return text;
    }
  }

  private void error(Diagnostic d) {
    err.println("error: " + d.message());
  }

  private static List<String> kindIds() {
    return AdapterKinds.all().stream().map(AdapterKind::id).toList();
  }

  /** {@code 0..5} for consecutive layers, else the list. */
  static String layerText(List<Integer> layers) {
    boolean consecutive = layers.get(layers.size() - 1) - layers.get(0) == layers.size() - 1;
    return consecutive && layers.size() > 1 ? layers.get(0) + ".." + layers.get(layers.size() - 1) : layers.toString();
  }
}
