package dev.graft.runtime.generate;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.TensorMismatchException;
import dev.graft.runtime.feed.HostInputs;
import dev.graft.runtime.feed.PastKeyValues;
import dev.graft.runtime.session.Sessions;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.KeyValueCache;
import dev.graft.spec.manifest.Manifest;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * Runs a causal-LM graft's inference graph for generation: its token input and attention mask
 * (all ones over the tokens so far), the parameters and gates given, and, where the manifest
 * lists a key/value cache and it is used, the previous run's {@code present.*} outputs as the next
 * run's {@code past_key_values.*} inputs (empty before the first).
 */
public final class OrtDecoder implements Generation.Decoder {
  private final OrtEnvironment env;
  private final OrtSession session;
  private final Manifest manifest;
  private final Map<String, ? extends OnnxTensorLike> fixed;
  private final boolean cached;
  private final String ids;
  private final String mask;
  private OrtSession.Result previous;

  /** {@code fixed}: the parameter and gate inputs (owned by the caller); {@code useCache}: feed the cache where the host has one. */
  public OrtDecoder(OrtEnvironment env, OrtSession session, Manifest manifest,
      Map<String, ? extends OnnxTensorLike> fixed, boolean useCache) {
    this.env = env;
    this.session = session;
    this.manifest = manifest;
    this.fixed = fixed;
    this.cached = useCache && manifest.getKeyValuesCount() > 0;
    String tokens = null;
    String attention = null;
    for (HostInput in : manifest.getInputsList()) {
      if (in.getMask()) {
        attention = in.getName();
      } else if (tokens == null) {
        tokens = in.getName();
      } else {
        throw new GraftException(RuntimeErrorCode.ARGUMENT, "generation feeds one token input and an attention mask;"
            + " this host also takes '" + in.getName() + "' (beside '" + tokens + "')");
      }
    }
    if (tokens == null) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "generation needs a token input; the host takes none");
    }
    this.ids = tokens;
    this.mask = attention;
  }

  @Override
  public boolean cached() {
    return cached;
  }

  @Override
  public float[][] next(long[][] tokens, int length) {
    int batch = tokens.length;
    Map<String, long[][]> host = new LinkedHashMap<>();
    host.put(ids, tokens);
    if (mask != null) {
      long[][] ones = new long[batch][length];
      for (long[] row : ones) {
        Arrays.fill(row, 1);
      }
      host.put(mask, ones);
    }
    Map<String, OnnxTensor> owned = HostInputs.tensors(env, manifest, host);
    try {
      Map<String, OnnxTensorLike> inputs = new HashMap<>(owned);
      inputs.putAll(fixed);
      if (cached && previous != null) {
        for (KeyValueCache c : manifest.getKeyValuesList()) {
          inputs.put(c.getPastInput(), (OnnxTensor) previous.get(c.getPresentOutput()).orElseThrow());
        }
      } else {
        Map<String, OnnxTensor> empty = PastKeyValues.empty(env, manifest, batch);
        owned.putAll(empty);
        inputs.putAll(empty);
      }
      Set<String> outputs = new LinkedHashSet<>();
      outputs.add(manifest.getLogits());
      if (cached) {
        manifest.getKeyValuesList().forEach(c -> outputs.add(c.getPresentOutput()));
      }
      OrtSession.Result r = session.run(inputs, outputs);
      try {
        OnnxTensor logits = (OnnxTensor) r.get(manifest.getLogits()).orElseThrow();
        long[] shape = logits.getInfo().getShape();
        if (shape.length != 3 || shape[0] != batch || shape[1] != tokens[0].length) {
          throw new TensorMismatchException(manifest.getLogits(),
              "[" + batch + ", " + tokens[0].length + ", vocab]", Arrays.toString(shape), "graph output");
        }
        int vocab = (int) shape[2];
        FloatBuffer fb = logits.getFloatBuffer();
        float[][] last = new float[batch][vocab];
        for (int b = 0; b < batch; b++) {
          fb.position((int) ((b * shape[1] + shape[1] - 1) * vocab));
          fb.get(last[b]);
        }
        if (cached) {
          if (previous != null) {
            previous.close();
          }
          previous = r;
          r = null;
        }
        return last;
      } finally {
        if (r != null) {
          r.close();
        }
      }
    } catch (OrtException e) {
      throw Sessions.failure("generation step failed", e);
    } finally {
      owned.values().forEach(OnnxTensor::close);
    }
  }

  @Override
  public void close() {
    if (previous != null) {
      previous.close();
      previous = null;
    }
  }
}
