package dev.graft.runtime.io;

import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * Where a transformers model class puts the encoder or decoder a graft's host is: PEFT's keys
 * are {@code base_model.model.<prefix><module path>.<suffix>}, the task head's ({@code
 * classifier}) without the prefix. A bare {@code BertModel} subclass has none ({@link #BARE}, what
 * Graft writes by default); {@code BertForSequenceClassification} puts the encoder under {@code
 * bert.}; decoders' causal-LM classes under {@code model.} (LLaMA, Mistral) or {@code
 * transformer.} (GPT-2). A load finds the layout from the file's keys unless one is given.
 */
public enum PeftLayout {
  BARE(""),
  BERT("bert."),
  MODEL("model."),
  TRANSFORMER("transformer.");

  /** The root of every key PEFT saves. */
  public static final String ROOT = "base_model.model.";

  private final String prefix;

  PeftLayout(String prefix) {
    this.prefix = prefix;
  }

  /** The module-path prefix, e.g. {@code bert.} ("" for {@link #BARE}). */
  public String prefix() {
    return prefix;
  }

  /** A parameter's save key in this layout: the prefix after {@link #ROOT} unless it is the task head's. */
  String key(Parameter p) {
    String k = p.getSaveKey();
    if (p.getRole() == ParameterRole.HEAD_WEIGHT || p.getRole() == ParameterRole.HEAD_BIAS || !k.startsWith(ROOT)) {
      return k;
    }
    return ROOT + prefix + k.substring(ROOT.length());
  }

  /** A module path in this layout. */
  String module(String path) {
    return prefix + path;
  }

  /** The first saved parameter whose key has a layout (a module's, not the head's), or null. */
  static @Nullable Parameter probe(List<Parameter> saved) {
    for (Parameter p : saved) {
      if (p.getRole() != ParameterRole.HEAD_WEIGHT && p.getRole() != ParameterRole.HEAD_BIAS
          && p.getSaveKey().startsWith(ROOT)) {
        return p;
      }
    }
    return null;
  }
}
