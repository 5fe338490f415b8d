package dev.graft.runtime.io;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.graft.runtime.FormatException;
import dev.graft.runtime.GraftException;
import dev.graft.runtime.RuntimeErrorCode;
import dev.graft.runtime.state.ParameterStore;
import dev.graft.spec.manifest.Adapter;
import dev.graft.spec.manifest.Manifest;
import dev.graft.spec.manifest.Parameter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Adapters with nested ranks (DyLoRA) at a rank below their maximum: cut in place, and exported as
 * a PEFT LoRA folder of that rank. All that is needed is in the manifest: {@code Adapter.max_rank}
 * marks the adapters, {@code Parameter.rank_axis} and {@code rank_rescaled} say how each of their
 * parameters is cut, and {@code Manifest.lora_export_config} is the export's config.
 *
 * <p>Such an adapter trains every rank b up to its maximum r at once, rank b scaled by {@code 1 /
 * b}; at rank k it is its parameters' first k entries along their rank axes, scaled by {@code 1 /
 * k}. Its inference graph scales by {@code 1 / r}, so a cut multiplies the rescaled parameters by
 * {@code r / k}.
 */
public final class NestedRanks {
  private NestedRanks() {}

  /** One nested-rank declaration of a manifest: its index (1-based, as parameters name it) and maximum rank. */
  private record Declaration(int adapter, int maxRank) {}

  private static List<Declaration> declarations(Manifest m, int rank) {
    List<Declaration> out = new ArrayList<>();
    for (int i = 0; i < m.getAdaptersCount(); i++) {
      int max = m.getAdapters(i).getMaxRank();
      if (max <= 0) {
        continue;
      }
      if (rank < 1 || rank > max) {
        throw new GraftException(RuntimeErrorCode.ARGUMENT,
            "rank must be in 1.." + max + " (the nested-rank adapter's maximum rank), got " + rank);
      }
      out.add(new Declaration(i + 1, max));
    }
    if (out.isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "graft '" + m.getName()
          + "' has no adapter of nested ranks (such as DyLoRA); its adapters are " + kinds(m));
    }
    return out;
  }

  private static List<String> kinds(Manifest m) {
    return m.getAdaptersList().stream().map(Adapter::getKind).toList();
  }

  private static int maxRankOf(Parameter p, List<Declaration> nested) {
    for (Declaration d : nested) {
      if (p.getAdapter() == d.adapter() && p.getRankAxis() > 0) {
        return d.maxRank();
      }
    }
    return 0;
  }

  /**
   * The first {@code rank} of {@code max} entries of {@code v} along {@code p}'s rank axis:
   * kept in place (the rest zero, the kept ones times {@code factor}) when {@code inPlace}, else
   * as a smaller row-major array of the cut shape.
   */
  private static float[] cut(Parameter p, float[] v, int max, int rank, float factor, boolean inPlace) {
    int axis = p.getRankAxis() - 1;
    if (axis >= p.getShapeCount() || p.getShape(axis) != max) {
      throw new FormatException(p.getName(), "rank axis " + axis + " of shape " + p.getShapeList()
          + " is not of the adapter's maximum rank " + max);
    }
    long outer = 1;
    for (int d = 0; d < axis; d++) {
      outer *= p.getShape(d);
    }
    int inner = (int) (v.length / outer / max);
    float[] out = inPlace ? v : new float[(int) (outer * rank * inner)];
    for (int o = 0; o < outer; o++) {
      for (int j = 0; j < max; j++) {
        for (int c = 0; c < inner; c++) {
          int from = (o * max + j) * inner + c;
          if (inPlace) {
            out[from] = j < rank ? v[from] * factor : 0;
          } else if (j < rank) {
            out[(o * rank + j) * inner + c] = v[from] * factor;
          }
        }
      }
    }
    return out;
  }

  private static float factor(Parameter p, int max, int rank) {
    return p.getRankRescaled() ? (float) ((double) max / rank) : 1f;
  }

  /**
   * Makes the store's nested-rank adapters act at rank {@code rank}: their parameters' entries
   * from {@code rank} on along the rank axis become zero and the rescaled parameters' first
   * {@code rank} are multiplied by {@code maxRank / rank}. At the maximum rank nothing changes.
   * This replaces the values (save them first to go back); training on from a cut adapter trains
   * the higher ranks from zero.
   */
  public static void truncate(ParameterStore store, int rank) {
    Manifest m = store.getManifest();
    List<Declaration> nested = declarations(m, rank);
    for (Declaration d : nested) {
      for (Parameter p : m.getParametersList()) {
        if (p.getAdapter() != d.adapter() || p.getRankAxis() == 0) {
          continue;
        }
        float[] v = store.getParameter(p.getName());
        cut(p, v, d.maxRank(), rank, factor(p, d.maxRank(), rank), true);
        store.setParameter(p.getName(), v);
      }
    }
  }

  /**
   * Saves the store's adapter with its nested-rank adapters at rank {@code rank} as a PEFT LoRA
   * folder: the manifest's {@code lora_export_config} with {@code r} and every {@code
   * rank_pattern} value set to {@code rank}, each cut parameter saved at its cut shape (transposed
   * where it is saved transposed, rescaled where it is rescaled) and the other saved parameters
   * as saved normally. Every adapter of the graft must have nested ranks.
   */
  public static void save(ParameterStore store, Path dir, int rank) {
    Manifest m = store.getManifest();
    List<Declaration> nested = declarations(m, rank);
    if (nested.size() != m.getAdaptersCount()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "a rank-" + rank + " LoRA export needs every adapter of graft '"
          + m.getName() + "' to have nested ranks (such as DyLoRA); its adapters are " + kinds(m));
    }
    Map<String, TensorData> tensors = new TreeMap<>();
    for (Parameter p : m.getParametersList()) {
      if (p.getSaveKey().isEmpty()) {
        continue;
      }
      float[] v = store.getParameter(p.getName());
      int max = maxRankOf(p, nested);
      if (max == 0) {
        float[] data = p.getSaveTransposed() ? PeftAdapters.transpose(v, (int) p.getShape(0), (int) p.getShape(1)) : v;
        tensors.put(p.getSaveKey(), TensorData.ofFloats(PeftAdapters.savedShape(p), data));
        continue;
      }
      long[] shape = p.getShapeList().stream().mapToLong(Long::longValue).toArray();
      shape[p.getRankAxis() - 1] = rank;
      float[] data = cut(p, v, max, rank, 1f, false);
      if (p.getSaveTransposed()) {
        data = PeftAdapters.transpose(data, (int) shape[0], (int) shape[1]);
        shape = new long[] {shape[1], shape[0]};
      }
      tensors.put(p.getSaveKey(), TensorData.ofFloats(shape, data));
    }
    PeftAdapters.write(dir, tensors, loraConfig(m, rank));
  }

  /**
   * PEFT's LoRA config of the graft's nested-rank declarations at {@code rank}: the compiler's
   * config of them as LoRA at their maximum ranks (the manifest's {@code lora_export_config}), with
   * {@code r} and every {@code rank_pattern} value set to {@code rank}.
   */
  private static String loraConfig(Manifest m, int rank) {
    if (m.getLoraExportConfig().isEmpty()) {
      throw new GraftException(RuntimeErrorCode.ARGUMENT, "graft '" + m.getName() + "' has nested-rank adapters of"
          + " different dropout or layers, which one PEFT LoRA config cannot hold");
    }
    JsonObject c = JsonParser.parseString(m.getLoraExportConfig()).getAsJsonObject();
    c.addProperty("r", rank);
    JsonObject pattern = c.getAsJsonObject("rank_pattern");
    pattern.keySet().forEach(k -> pattern.addProperty(k, rank));
    return new GsonBuilder().setPrettyPrinting().serializeNulls().disableHtmlEscaping().create().toJson(c) + "\n";
  }
}
