package dev.graft.runtime.io;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.runtime.ErrorCodes;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.ParameterStore;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.manifest.ParameterRole;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.TreeMap;

/**
 * DyLoRA adapters at a rank below their maximum: truncating them in place, and exporting them as
 * a plain PEFT LoRA folder of that rank.
 *
 * <p>DyLoRA trains every rank b up to its maximum r at once, rank b scaled by {@code alpha / b};
 * the adapter at rank k is A's first k columns and B's first k rows with scaling {@code alpha /
 * k}. Graft keeps A {@code [in, r]} and B {@code [r, out]} and its inference graph scales by
 * {@code alpha / r}.
 */
public final class DyLoraRanks {
  /** The kind id of DyLoRA in manifests. */
  public static final String KIND = "dylora";

  private DyLoraRanks() {}

  /** One DyLoRA declaration of a manifest: its index (1-based, as parameters name it) and options. */
  private record Declaration(int adapter, Adapter spec, int maxRank, double alpha) {}

  private static List<Declaration> declarations(Manifest m, int rank) {
    List<Declaration> out = new ArrayList<>();
    for (int i = 0; i < m.getAdaptersCount(); i++) {
      Adapter a = m.getAdapters(i);
      if (!a.getKind().equals(KIND)) {
        continue;
      }
      int max = Integer.parseInt(a.getOptionsOrThrow("rank"));
      if (rank < 1 || rank > max) {
        throw new GraftException(ErrorCodes.ARGUMENT,
            "rank must be in 1.." + max + " (the DyLoRA adapter's maximum rank), got " + rank);
      }
      out.add(new Declaration(i + 1, a, max, Double.parseDouble(a.getOptionsOrThrow("alpha"))));
    }
    if (out.isEmpty()) {
      throw new GraftException(ErrorCodes.ARGUMENT, "graft '" + m.getName() + "' has no DyLoRA adapter; its adapters are "
          + m.getAdaptersList().stream().map(Adapter::getKind).toList());
    }
    return out;
  }

  private static boolean isFactor(Parameter p, Declaration d) {
    return p.getAdapter() == d.adapter() && (p.getRole() == ParameterRole.LORA_A || p.getRole() == ParameterRole.LORA_B);
  }

  /**
   * Makes the store's DyLoRA adapters act at rank {@code rank}: A's columns and B's rows from
   * {@code rank} on become zero and B's first {@code rank} rows are multiplied by {@code
   * maxRank / rank}, so that the inference graph's {@code alpha / maxRank} scaling gives {@code
   * alpha / rank}. At the maximum rank nothing changes. This replaces the values (save them first
   * to go back); training on from a truncated adapter trains the higher ranks from zero.
   */
  public static void truncate(ParameterStore store, int rank) {
    Manifest m = store.getManifest();
    for (Declaration d : declarations(m, rank)) {
      float factor = (float) ((double) d.maxRank() / rank);
      for (Parameter p : m.getParametersList()) {
        if (!isFactor(p, d)) {
          continue;
        }
        float[] v = store.getParameter(p.getName());
        if (p.getRole() == ParameterRole.LORA_A) {
          int in = (int) p.getShape(0);
          for (int i = 0; i < in; i++) {
            for (int j = rank; j < d.maxRank(); j++) {
              v[i * d.maxRank() + j] = 0;
            }
          }
        } else {
          int out = (int) p.getShape(1);
          for (int j = 0; j < d.maxRank(); j++) {
            for (int c = 0; c < out; c++) {
              v[j * out + c] = j < rank ? v[j * out + c] * factor : 0;
            }
          }
        }
        store.setParameter(p.getName(), v);
      }
    }
  }

  /**
   * Saves the store's adapter with its DyLoRA adapters at rank {@code rank} as a plain PEFT LoRA
   * folder: {@code peft_type: LORA}, {@code r = rank}, {@code lora_alpha} the DyLoRA alpha (PEFT
   * scales by {@code alpha / rank}), {@code lora_A.weight [rank, in]} = A's first columns
   * transposed, {@code lora_B.weight [out, rank]} = B's first rows transposed, and the head as
   * saved normally. A Graft LoRA of that rank on the same sites loads it. Every adapter of the
   * graft must be DyLoRA, with one dropout and layer filter among them.
   */
  public static void save(ParameterStore store, Path dir, int rank) {
    Manifest m = store.getManifest();
    List<Declaration> dylora = declarations(m, rank);
    if (dylora.size() != m.getAdaptersCount()) {
      throw new GraftException(ErrorCodes.ARGUMENT, "a rank-" + rank + " LoRA export needs every adapter of graft '"
          + m.getName() + "' to be DyLoRA; its adapters are " + m.getAdaptersList().stream().map(Adapter::getKind).toList());
    }
    Map<String, TensorData> tensors = new TreeMap<>();
    for (Parameter p : m.getParametersList()) {
      if (p.getSaveKey().isEmpty()) {
        continue;
      }
      float[] v = store.getParameter(p.getName());
      Declaration d = dylora.stream().filter(x -> isFactor(p, x)).findFirst().orElse(null);
      if (d == null) {
        float[] data = p.getSaveTransposed() ? PeftAdapters.transpose(v, (int) p.getShape(0), (int) p.getShape(1)) : v;
        tensors.put(p.getSaveKey(), TensorData.ofFloats(PeftAdapters.savedShape(p), data));
      } else if (p.getRole() == ParameterRole.LORA_A) {
        int in = (int) p.getShape(0);
        float[] t = new float[rank * in];
        for (int j = 0; j < rank; j++) {
          for (int i = 0; i < in; i++) {
            t[j * in + i] = v[i * d.maxRank() + j];
          }
        }
        tensors.put(p.getSaveKey(), TensorData.ofFloats(new long[] {rank, in}, t));
      } else {
        int out = (int) p.getShape(1);
        float[] t = new float[out * rank];
        for (int c = 0; c < out; c++) {
          for (int j = 0; j < rank; j++) {
            t[c * rank + j] = v[j * out + c];
          }
        }
        tensors.put(p.getSaveKey(), TensorData.ofFloats(new long[] {out, rank}, t));
      }
    }
    PeftAdapters.write(dir, tensors, loraConfig(m, rank));
  }

  /**
   * PEFT's LoRA config of the graft's DyLoRA declarations at {@code rank}: the compiler's config of
   * them as LoRA at their maximum ranks (the manifest's {@code lora_export_config}), with {@code r}
   * and every {@code rank_pattern} value set to {@code rank}.
   */
  private static String loraConfig(Manifest m, int rank) {
    if (m.getLoraExportConfig().isEmpty()) {
      throw new GraftException(ErrorCodes.ARGUMENT, "graft '" + m.getName() + "' has DyLoRA adapters of different"
          + " dropout or layers, which one PEFT LoRA config cannot hold");
    }
    JsonObject c = JsonParser.parseString(m.getLoraExportConfig()).getAsJsonObject();
    c.addProperty("r", rank);
    JsonObject pattern = c.getAsJsonObject("rank_pattern");
    pattern.keySet().forEach(k -> pattern.addProperty(k, rank));
    return new GsonBuilder().setPrettyPrinting().serializeNulls().disableHtmlEscaping().create().toJson(c) + "\n";
  }
}
