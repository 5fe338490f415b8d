package dev.graft.dsl.compile;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonNull;
import com.google.gson.JsonObject;
import dev.graft.dsl.adapter.AdapterOption;
import dev.graft.dsl.spec.CausalLmSpec;
import dev.graft.dsl.spec.TaskSpec;
import java.util.List;
import java.util.Objects;

/**
 * The {@code adapter_config.json} saved beside an adapter's weights. Where every declaration's
 * kind is one PEFT type and PEFT's config can express them together, it is PEFT's config (PEFT
 * loads the folder); otherwise it is Graft's: {@code "peft_type": "GRAFT"} with the declarations
 * themselves ({@code graft_adapters}: kind, target, layers, options).
 */
final class AdapterConfig {
  static final String GRAFT_TYPE = "GRAFT";

  private AdapterConfig() {}

  static String json(List<PlannedAdapter> adapters, TaskSpec task, String host, boolean head) {
    JsonObject c = new JsonObject();
    String type = adapters.isEmpty() ? "LORA" : adapters.get(0).kind().peftType(adapters.get(0).spec());
    boolean peft = type != null
        && adapters.stream().allMatch(a -> Objects.equals(a.kind().peftType(a.spec()), type))
        // Named adapters and composition: several named adapters saved together are Graft's own format.
        && (adapters.size() == 1 || adapters.stream().noneMatch(a -> a.spec().isNamed()));
    c.addProperty("peft_type", peft ? type : GRAFT_TYPE);
    // A causal LM graft has no head; every pooled head (classification, regression, multi-label)
    // is a Hugging Face sequence-classification head ("classifier", num_labels = its outputs).
    c.addProperty("task_type", task instanceof CausalLmSpec ? "CAUSAL_LM" : "SEQ_CLS");
    c.addProperty("base_model_name_or_path", host);
    c.add("revision", JsonNull.INSTANCE);
    c.addProperty("inference_mode", true);
    JsonArray modulesToSave = new JsonArray();
    if (head) {
      modulesToSave.add("classifier");
    }
    c.add("modules_to_save", modulesToSave);
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
    } else {
      c.addProperty("peft_type", GRAFT_TYPE);
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
      c.add("graft_adapters", list);
    }
    return new GsonBuilder().setPrettyPrinting().serializeNulls().disableHtmlEscaping().create().toJson(c) + "\n";
  }
}
