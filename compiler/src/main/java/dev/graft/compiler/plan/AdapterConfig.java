package dev.graft.compiler.plan;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.compiler.kinds.PeftTargets;
import dev.graft.compiler.kinds.lora.DyLoraKind;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.tasks.TaskKind;
import dev.graft.compiler.spec.TaskSpec;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The {@code adapter_config.json} saved beside an adapter's weights. Where every declaration's
 * kind is one PEFT type and PEFT's config can express them together, it is PEFT's config (PEFT
 * loads the folder); otherwise, and for a quantized declaration (whose saved weights are its
 * full-precision latent ones, which PEFT would take for the adapter's), it is Graft's: {@code "peft_type": "GRAFT"} with the declarations
 * themselves ({@code graft_adapters}: kind, target, layers, options). Read by PEFT 0.13 and later:
 * no entry a PEFT of that age refuses ({@code exclude_modules} is not written), and {@code
 * base_model_name_or_path} null for the user to set (PEFT takes it for a Hub id or a local
 * transformers folder; the ONNX host's name is neither).
 */
public final class AdapterConfig {
  static final String GRAFT_TYPE = "GRAFT";

  private AdapterConfig() {}

  /**
   * The config of {@code adapters} saved together (one adapter alone: a list of one); {@code
   * modules} are the host's linear modules, against which PEFT resolves {@code target_modules}.
   */
  public static String json(List<PlannedAdapter> adapters, TaskSpec task, boolean head, Collection<String> modules) {
    String type = adapters.isEmpty() ? "LORA" : adapters.get(0).kind().peftType(adapters.get(0).spec());
    boolean peft = type != null
        && adapters.stream().allMatch(a -> Objects.equals(a.kind().peftType(a.spec()), type))
        // Named adapters and composition: several named adapters saved together are Graft's own format.
        && (adapters.size() == 1 || adapters.stream().noneMatch(a -> a.spec().isNamed()))
        // Quantized adapters: PEFT would read the saved full-precision latent weights as the adapter's own.
        && adapters.stream().allMatch(a -> a.spec().quantizeBits() == 0);
    JsonObject c = common(peft ? type : GRAFT_TYPE, task, head);
    if (peft && adapters.isEmpty()) {
      // A head alone: an empty LoRA, so PEFT still loads the head as a module to save.
      c.addProperty("r", 8);
      c.addProperty("lora_alpha", 16);
      c.add("target_modules", new JsonArray());
    }
    JsonObject peftConfig = c.deepCopy();
    boolean expressible = peft;
    for (PlannedAdapter a : adapters) {
      expressible = expressible && a.kind().peftConfig(a.spec(), a.sites(), peftConfig);
    }
    if (expressible) {
      c = peftConfig;
      if (type.equals("LORA") && !adapters.isEmpty()) {
        PeftTargets.spell(c, modules);
      }
    } else {
      c.addProperty("peft_type", GRAFT_TYPE);
      c.add("graft_adapters", graftAdapters(adapters));
    }
    return text(c);
  }

  /**
   * PEFT's LoRA config of the graft's DyLoRA declarations exported as plain LoRA at their maximum
   * ranks, for the manifest's {@code lora_export_config}: a rank-k export sets {@code r} and every
   * {@code rank_pattern} value to k. Empty when there is no DyLoRA declaration, or when one LoRA
   * config cannot hold them (different dropout).
   */
  public static String dyLoraAsLora(List<PlannedAdapter> adapters, TaskSpec task, boolean head,
      Collection<String> modules) {
    List<PlannedAdapter> dylora = adapters.stream().filter(a -> a.kind().id().equals(DyLoraKind.ID)).toList();
    if (dylora.isEmpty()) {
      return "";
    }
    JsonObject c = common("LORA", task, head);
    for (PlannedAdapter a : dylora) {
      AdapterSpec lora = new AdapterSpec("lora", a.spec().target(), a.spec().layers(), Map.of(
          "rank", a.spec().intOption("rank"), "alpha", a.spec().doubleOption("alpha"),
          "dropout", a.spec().doubleOption("dropout"), "rslora", false), null);
      if (!PeftTargets.lora(lora, a.sites(), c, false)) {
        return "";
      }
    }
    PeftTargets.spell(c, modules);
    return text(c);
  }

  private static JsonObject common(String peftType, TaskSpec task, boolean head) {
    JsonObject c = new JsonObject();
    c.addProperty("peft_type", peftType);
    // A causal LM graft has no head; every pooled head (classification, regression, multi-label)
    // is a Hugging Face sequence-classification head ("classifier", num_labels = its outputs).
    c.addProperty("task_type", TaskKind.of(task).peftTaskType());
    c.add("base_model_name_or_path", JsonNull.INSTANCE);
    c.add("revision", JsonNull.INSTANCE);
    c.addProperty("inference_mode", true);
    JsonArray modulesToSave = new JsonArray();
    if (head) {
      modulesToSave.add("classifier");
    }
    c.add("modules_to_save", modulesToSave);
    return c;
  }

  private static JsonArray graftAdapters(List<PlannedAdapter> adapters) {
    JsonArray list = new JsonArray();
    for (PlannedAdapter a : adapters) {
      JsonObject d = new JsonObject();
      d.addProperty("kind", a.kind().id());
      if (a.spec().isNamed()) {
        d.addProperty("name", a.spec().name());
      }
      d.addProperty("target", a.spec().target());
      JsonArray layers = new JsonArray();
      a.spec().layers().forEach(layers::add);
      d.add("layers", layers);
      JsonObject options = new JsonObject();
      a.spec().options().forEach((k, v) -> options.addProperty(k, AdapterOption.text(v)));
      d.add("options", options);
      JsonArray sites = new JsonArray();
      a.sites().forEach(s -> sites.add(s.modulePath()));
      d.add("sites", sites);
      list.add(d);
    }
    return list;
  }

  private static String text(JsonObject c) {
    return new GsonBuilder().setPrettyPrinting().serializeNulls().disableHtmlEscaping().create().toJson(c) + "\n";
  }
}
