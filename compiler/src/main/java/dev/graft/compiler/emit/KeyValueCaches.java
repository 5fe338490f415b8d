package dev.graft.compiler.emit;

import dev.graft.compiler.ir.TensorType;
import dev.graft.spec.manifest.KeyValueCache;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A decoder host's key/value cache, found by the names Hugging Face / optimum "with past" exports
 * give it (graph input {@code past_key_values.<i>.<key|value>}, host output {@code present.<i>.<key|value>}),
 * and its position table's size: what generation needs to know, written into the manifest.
 */
public final class KeyValueCaches {
  public static final String PAST_PREFIX = "past_key_values.";
  public static final String PRESENT_PREFIX = "present.";

  private KeyValueCaches() {}

  /** The cache entries of an imported host, in input order: each past input whose present output the host has. */
  public static List<KeyValueCache> of(Map<String, TensorType> inputs, List<String> outputs) {
    List<KeyValueCache> out = new ArrayList<>();
    inputs.forEach((name, type) -> {
      if (!name.startsWith(PAST_PREFIX)) {
        return;
      }
      String present = PRESENT_PREFIX + name.substring(PAST_PREFIX.length());
      if (!outputs.contains(present) || !type.hasRank() || type.rank() < 2) {
        return;
      }
      KeyValueCache.Builder b = KeyValueCache.newBuilder().setPastInput(name).setPresentOutput(present)
          .setElemType(type.elemType()).setSequenceAxis(type.rank() == 4 ? 2 : type.rank() - 2);
      type.dims().forEach(d -> b.addShape(ManifestWriter.dim(d)));
      out.add(b.build());
    });
    return out;
  }

  /** The past inputs of a host (its cache's graph inputs). */
  public static Set<String> pastInputs(Map<String, TensorType> inputs, List<String> outputs) {
    Set<String> out = new HashSet<>();
    of(inputs, outputs).forEach(c -> out.add(c.getPastInput()));
    return out;
  }
}
