package dev.graft.runtime.session;

import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;

/**
 * Which execution provider ran each node of a graph, read from an ONNX Runtime profile (a session
 * opened with {@code ModelOptions.withProfiling}, run at least once): every {@code Node} event
 * names its node, op type and provider. On CUDA, {@link #notOn} with {@value #CUDA} lists the
 * nodes that fell back to the CPU (each a copy of its inputs to the host and of its outputs back).
 *
 * @param nodes node name → its op type and provider, sorted by node name
 */
public record NodePlacement(SortedMap<String, Placed> nodes) {
  /** The CUDA execution provider's name in a profile. */
  public static final String CUDA = "CUDAExecutionProvider";

  /** The CPU execution provider's name in a profile. */
  public static final String CPU = "CPUExecutionProvider";

  /**
   * One node's placement.
   *
   * @param op the op type
   * @param provider the execution provider that ran it
   */
  public record Placed(String op, String provider) {}

  public NodePlacement {
    nodes = Collections.unmodifiableSortedMap(new TreeMap<>(nodes));
  }

  /**
   * The placement in the profile {@code trace} (ONNX Runtime's Chrome-trace JSON array).
   *
   * @throws GraftException {@code GRAFT-R005} when it cannot be read, {@code GRAFT-R003} when it is
   *     no profile or names no node (a session that never ran)
   */
  public static NodePlacement fromProfile(Path trace) {
    String text;
    try {
      text = Files.readString(trace, StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new GraftException(RuntimeErrorCode.IO, "cannot read the profile " + trace + ": " + e.getMessage(), e);
    }
    SortedMap<String, Placed> nodes = new TreeMap<>();
    try {
      for (JsonElement e : JsonParser.parseString(text).getAsJsonArray()) {
        JsonObject o = e.getAsJsonObject();
        String name = o.has("name") ? o.get("name").getAsString() : "";
        JsonObject args = o.has("args") && o.get("args").isJsonObject() ? o.getAsJsonObject("args") : null;
        if (o.has("cat") && o.get("cat").getAsString().equals("Node") && name.endsWith("_kernel_time")
            && args != null && args.has("op_name") && args.has("provider")) {
          String node = name.substring(0, name.length() - "_kernel_time".length());
          nodes.put(node, new Placed(args.get("op_name").getAsString(), args.get("provider").getAsString()));
        }
      }
    } catch (JsonParseException | IllegalStateException | UnsupportedOperationException e) {
      throw new FormatException(trace.toString(), "not an ONNX Runtime profile (expected a JSON array of trace"
          + " events): " + e.getMessage(), e);
    }
    if (nodes.isEmpty()) {
      throw new FormatException(trace.toString(), "the profile names no node kernel: expected '<node>_kernel_time'"
          + " events with op_name and provider (was the session run before it was closed?)");
    }
    return new NodePlacement(nodes);
  }

  /** The nodes not run by {@code provider}, as "node (op) on provider", sorted by node name. */
  public List<String> notOn(String provider) {
    List<String> out = new ArrayList<>();
    for (Map.Entry<String, Placed> e : nodes.entrySet()) {
      if (!e.getValue().provider().equals(provider)) {
        out.add(e.getKey() + " (" + e.getValue().op() + ") on " + e.getValue().provider());
      }
    }
    return out;
  }

  /** How many nodes each provider ran, by provider name. */
  public SortedMap<String, Integer> countByProvider() {
    SortedMap<String, Integer> counts = new TreeMap<>();
    nodes.values().forEach(p -> counts.merge(p.provider(), 1, Integer::sum));
    return counts;
  }
}
