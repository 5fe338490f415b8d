package dev.graft.tools.inspect;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * The command line of the {@link HostInspector}, parsed.
 *
 * @param host the host model: a file path, else a class-path resource name (as {@code @Graft(host = …)})
 * @param kind the id of the adapter kind whose selection to show ({@code --kind}), or null
 * @param select the selector ({@code --select}), or null: the kind's default target, or every
 *     site without {@code --kind}
 * @param layers the layer filter ({@code --layers 0,1}); empty for every layer
 * @param options option values as written ({@code --option rank=4}), by name, in the order given
 * @param help whether {@code --help} was given (everything else is then ignored)
 */
record InspectorArguments(
    String host, @Nullable String kind, @Nullable String select, List<Integer> layers, Map<String, String> options,
    boolean help) {
  static final String USAGE = String.join("\n",
      "usage: HostInspector <host> [--kind <id>] [--select <regex>] [--layers <i,j,...>] [--option <name>=<value>]...",
      "",
      "Lists the sites of an ONNX host model that adapters can attach to, grouped by layer, and",
      "shows which of them a declaration would take, selected exactly as the Graft compiler selects.",
      "",
      "  <host>                   an .onnx file, or a class-path resource name such as all-minilm-l6-v2.onnx",
      "  --kind <id>              the adapter kind of the declaration: lora, lokr, bottleneck, ...",
      "                           (without --select: the kind's default target)",
      "  --select <regex>         the declaration's target: a Java regular expression that must match",
      "                           a site's whole node name (without --kind: applied to every site type)",
      "  --layers <i,j,...>       the declaration's layer filter, e.g. 0,1",
      "  --option <name>=<value>  an option of the kind, e.g. --option config=houlsby (repeatable)",
      "  --help                   this text",
      "",
      "Without --kind, --select and --layers: the host's inputs, outputs, opset, parameter count and",
      "layers, and every adapter kind's candidate sites.",
      "",
      "Exit status: 0 sites listed or selected; 1 the declaration takes no site or has an error",
      "(the compiler's message is printed); 2 bad arguments or a host that cannot be read.");

  InspectorArguments {
    layers = List.copyOf(layers);
    options = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(options));
  }

  /** Whether a declaration was described ({@code --kind}, {@code --select} or {@code --layers}). */
  boolean selects() {
    return kind != null || select != null || !layers.isEmpty();
  }

  /** A command line that is not one of {@link #USAGE}'s forms; the message says what was expected. */
  static final class Invalid extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Invalid(String message) {
      super(message);
    }
  }

  /**
   * Parses {@code args}; each flag takes its value as the next argument or after {@code =}
   * ({@code --kind=lora}).
   *
   * @throws Invalid for an unknown flag, a flag without its value or given twice, a layer that
   *     is not a non-negative integer, an option without {@code =}, no host or two hosts
   */
  static InspectorArguments parse(String... args) {
    String host = null;
    String kind = null;
    String select = null;
    List<Integer> layers = new ArrayList<>();
    boolean layersGiven = false;
    Map<String, String> options = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("--help") || arg.equals("-h")) {
        return new InspectorArguments("", null, null, List.of(), Map.of(), true);
      }
      if (!arg.startsWith("-")) {
        if (host != null) {
          throw new Invalid("expected one host model, got two: '" + host + "' and '" + arg + "'");
        }
        host = arg;
        continue;
      }
      int eq = arg.indexOf('=');
      String flag = eq < 0 ? arg : arg.substring(0, eq);
      String value;
      if (eq >= 0) {
        value = arg.substring(eq + 1);
      } else if (i + 1 < args.length && isFlag(flag)) {
        value = args[++i];
      } else if (isFlag(flag)) {
        throw new Invalid(flag + " expects a value (" + expected(flag) + "), got none");
      } else {
        value = "";
      }
      switch (flag) {
        case "--kind" -> kind = once(flag, kind, value);
        case "--select" -> select = once(flag, select, value);
        case "--layers" -> {
          if (layersGiven) {
            throw new Invalid("--layers given twice; expected it once (" + expected(flag) + ")");
          }
          layersGiven = true;
          layers.addAll(layers(value));
        }
        case "--option" -> {
          int at = value.indexOf('=');
          if (at <= 0) {
            throw new Invalid("--option expects <name>=<value>, e.g. rank=4; got '" + value + "'");
          }
          options.put(value.substring(0, at), value.substring(at + 1));
        }
        default -> throw new Invalid("unknown argument '" + arg
            + "'; expected a host model, --kind, --select, --layers, --option or --help");
      }
    }
    if (host == null) {
      throw new Invalid("expected a host model (an .onnx file or class-path resource), got none");
    }
    if (!options.isEmpty() && kind == null) {
      throw new Invalid("--option " + options.keySet().iterator().next()
          + " needs --kind: options belong to an adapter kind");
    }
    if (kind != null && kind.isBlank()) {
      throw new Invalid("--kind expects an adapter kind id such as lora, got an empty value");
    }
    return new InspectorArguments(host, kind, select, layers, options, false);
  }

  private static boolean isFlag(String flag) {
    return flag.equals("--kind") || flag.equals("--select") || flag.equals("--layers") || flag.equals("--option");
  }

  private static String expected(String flag) {
    return switch (flag) {
      case "--kind" -> "an adapter kind id such as lora";
      case "--select" -> "a regular expression over node names";
      case "--layers" -> "comma-separated layer indices such as 0,1";
      default -> "<name>=<value>, e.g. rank=4";
    };
  }

  private static String once(String flag, @Nullable String previous, String value) {
    if (previous != null) {
      throw new Invalid(flag + " given twice ('" + previous + "' and '" + value + "'); expected it once");
    }
    return value;
  }

  private static List<Integer> layers(String text) {
    List<Integer> out = new ArrayList<>();
    for (String part : text.split(",", -1)) {
      String p = part.strip();
      try {
        int layer = Integer.parseInt(p);
        if (layer < 0) {
          throw new NumberFormatException();
        }
        if (!out.contains(layer)) {
          out.add(layer);
        }
      } catch (NumberFormatException e) {
        throw new Invalid("--layers expects comma-separated layer indices >= 0 such as 0,1; got '" + text
            + "' ('" + p + "' is not one)");
      }
    }
    return out;
  }
}
