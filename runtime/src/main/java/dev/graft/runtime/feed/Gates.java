package dev.graft.runtime.feed;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Which named adapters are on: each gated adapter's gate input is fed a bool scalar, true while
 * the adapter is active. Every gated adapter is on at first.
 */
public final class Gates {
  private final Manifest manifest;
  private final Set<String> gated = new TreeSet<>();
  private final Set<String> active = new TreeSet<>();

  public Gates(Manifest manifest) {
    this.manifest = manifest;
    manifest.getAdaptersList().stream().filter(a -> !a.getGate().isEmpty()).forEach(a -> gated.add(a.getName()));
    active.addAll(gated);
  }

  /**
   * Switches on exactly {@code names}, the other gated adapters off.
   *
   * @throws GraftException for a name that is not a gated adapter, listing those that are
   */
  public void activate(List<String> names) {
    for (String n : names) {
      if (!gated.contains(n)) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "graft '" + manifest.getName()
            + "' has no gated adapter named '" + n + "'; its gated (named) adapters are " + gated);
      }
    }
    active.clear();
    active.addAll(names);
  }

  /** Switches on every gated adapter. */
  public void activateAll() {
    active.clear();
    active.addAll(gated);
  }

  /** The active adapters, sorted. */
  public Set<String> active() {
    return Collections.unmodifiableSet(new TreeSet<>(active));
  }

  /** A bool scalar per gate input, true where its adapter is active (the caller closes them). */
  public Map<String, OnnxTensor> tensors(OrtEnvironment env) throws OrtException {
    Map<String, OnnxTensor> out = new HashMap<>();
    for (Adapter a : manifest.getAdaptersList()) {
      if (!a.getGate().isEmpty()) {
        out.put(a.getGate(), OnnxTensor.createTensor(env, active.contains(a.getName())));
      }
    }
    return out;
  }
}
