package dev.graft.runtime.data;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The host inputs of one batch, by name: what {@link dev.graft.runtime.AdapterModel} trains on and
 * predicts from, of any element type and rank the manifest declares (float pixels {@code [batch,
 * 3, 224, 224]}, int64 token rows {@code [batch, sequence]}, …). Immutable; the order is the
 * order given. The runtime checks it against the manifest where it is fed (names, element types,
 * ranks, fixed sizes, sizes shared between inputs, finite floats).
 *
 * @param tensors host input name → its values
 */
public record HostFeed(Map<String, HostTensor> tensors) {
  public HostFeed {
    if (tensors.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "a host feed needs at least one host input, got none");
    }
    tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
  }

  /** One host input. */
  public static HostFeed of(String name, HostTensor tensor) {
    return new HostFeed(Map.of(name, tensor));
  }

  /** Two host inputs, in this order. */
  public static HostFeed of(String name, HostTensor tensor, String name2, HostTensor tensor2) {
    Map<String, HostTensor> m = new LinkedHashMap<>();
    m.put(name, tensor);
    m.put(name2, tensor2);
    return new HostFeed(m);
  }

  /**
   * Integer token rows {@code [batch][sequence]} per input name (the convenience form of text
   * hosts), as int64 tensors; rows of one input that differ in length are {@code GRAFT-R002}.
   */
  public static HostFeed ofRows(Map<String, long[][]> rows) {
    Map<String, HostTensor> m = new LinkedHashMap<>();
    rows.forEach((name, r) -> m.put(name, HostTensor.ofArray(r, name)));
    return new HostFeed(m);
  }

  /** Host input {@code name}; an unknown name is {@code GRAFT-R006}, listing the inputs. */
  public HostTensor get(String name) {
    HostTensor t = tensors.get(name);
    if (t == null) {
      throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "the batch has no host input '" + name + "'; given "
          + names());
    }
    return t;
  }

  /** The input names, sorted. */
  public Set<String> names() {
    return new TreeSet<>(tensors.keySet());
  }

  /** The batch size: the first dimension of the first input (0 for a scalar). */
  public int batchSize() {
    HostTensor first = tensors.values().iterator().next();
    return first.rank() == 0 ? 0 : Math.toIntExact(first.dim(0));
  }

  /** The integer inputs of rank 2 as token rows, by name; any other input is {@code GRAFT-R383} (use {@link #tensors}). */
  public Map<String, long[][]> rows() {
    Map<String, long[][]> out = new LinkedHashMap<>();
    tensors.forEach((name, t) -> out.put(name, t.rows(name)));
    return out;
  }
}
