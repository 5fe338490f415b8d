package dev.graft.runtime.data;

import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.jspecify.annotations.Nullable;

/**
 * A training batch: its host inputs ({@link HostFeed}, of any element type and rank the manifest
 * declares: token rows, float pixels, …) and what it is trained towards. {@link #of} stacks
 * tokenized examples into {@code [batch, sequence]} rows, padded with 0 to the longest sequence
 * in the batch (not to the tokenizer's maximum).
 *
 * @param feed the host inputs by name
 * @param labels {@code [batch]}
 * @param targets {@code [batch][outputs]} when the examples carry float targets, else null
 */
public record Batch(HostFeed feed, long[] labels, float @Nullable [][] targets) {
  /** A classified batch of host inputs of any type. */
  public Batch(HostFeed feed, long[] labels) {
    this(feed, labels, null);
  }

  /** A batch of token rows {@code [batch][sequence]} per host input name. */
  public Batch(Map<String, long[][]> inputs, long[] labels, float @Nullable [][] targets) {
    this(HostFeed.ofRows(inputs), labels, targets);
  }

  /** A classified batch of token rows {@code [batch][sequence]} per host input name. */
  public Batch(Map<String, long[][]> inputs, long[] labels) {
    this(HostFeed.ofRows(inputs), labels, null);
  }

  /**
   * The host inputs as token rows {@code [batch][sequence]} by name (copies), for batches whose
   * inputs are all integer rows of rank 2; a batch with another input (float pixels) is {@code
   * GRAFT-R383}: read {@link #feed} instead.
   */
  public Map<String, long[][]> inputs() {
    return feed.rows();
  }

  /** Stacks examples, padding every feature with 0 to the batch's longest sequence and stacking every tensor. */
  public static Batch of(List<Example> examples) {
    if (examples.isEmpty()) {
      return of(examples, List.of());
    }
    List<String> names = new ArrayList<>(examples.get(0).features().keySet());
    names.addAll(examples.get(0).tensors().keySet());
    return of(examples, names);
  }

  /**
   * Stacks the named inputs of examples (others are left out): features padded with 0 to the
   * longest sequence, tensors (all of one shape and type) stacked along a new first dimension.
   */
  public static Batch of(List<Example> examples, Collection<String> names) {
    if (examples.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "a batch needs at least one example");
    }
    int longest = 0;
    for (Example e : examples) {
      longest = Math.max(longest, e.length());
    }
    Map<String, HostTensor> inputs = new LinkedHashMap<>();
    for (String name : names) {
      if (examples.get(0).tensors().containsKey(name)) {
        List<HostTensor> parts = new ArrayList<>();
        for (int i = 0; i < examples.size(); i++) {
          HostTensor t = examples.get(i).tensors().get(name);
          if (t == null) {
            throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "example " + i + " of the batch has no tensor '"
                + name + "'");
          }
          parts.add(t);
        }
        inputs.put(name, HostTensor.stack(name, parts));
        continue;
      }
      long[][] rows = new long[examples.size()][longest];
      for (int i = 0; i < examples.size(); i++) {
        long[] v = examples.get(i).features().get(name);
        if (v == null) {
          throw new GraftException(RuntimeErrorCode.UNKNOWN_NAME, "example " + i + " of the batch has no feature '" + name + "'");
        }
        System.arraycopy(v, 0, rows[i], 0, v.length);
      }
      inputs.put(name, HostTensor.of(rows));
    }
    long[] labels = new long[examples.size()];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = examples.get(i).label();
    }
    float[][] targets = null;
    if (examples.get(0).targets() != null) {
      targets = new float[examples.size()][];
      for (int i = 0; i < targets.length; i++) {
        float[] t = examples.get(i).targets();
        if (t == null || t.length != examples.get(0).targets().length) {
          throw new GraftException(RuntimeErrorCode.ARGUMENT, "example " + i + " of the batch has "
              + (t == null ? "no targets" : t.length + " targets") + "; example 0 has "
              + examples.get(0).targets().length);
        }
        targets[i] = t.clone();
      }
    }
    return new Batch(new HostFeed(inputs), labels, targets);
  }

  public int size() {
    return labels.length;
  }
}
