package dev.graft.compiler.kinds;

import com.google.gson.JsonObject;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.spec.AdapterSpec;
import java.util.List;
import org.jspecify.annotations.Nullable;

/**
 * One kind of adapter: the options a declaration of it takes, the sites of a host it can attach
 * to, and the small graph it adds at each. The compiler does the rest for every kind alike:
 * checking options, matching selectors, autodiff, the optimizer, saving and loading.
 *
 * <p>A kind is stateless; {@link AdapterKinds} holds one instance of each.
 */
public interface AdapterKind {
  /** The id declarations name and manifests record, e.g. {@code "lora"}. */
  String id();

  /** The name messages use, e.g. {@code "LoRA"}. */
  String displayName();

  /** The qualified name of the annotation that declares it, e.g. {@code dev.graft.annotations.Lora}. */
  String annotation();

  /** Every option, with its default; annotation members and builder properties of the same names. */
  List<AdapterOption> options();

  /**
   * Why this kind's declarations may not take {@code quantizeBits} (quantized adapters), or null
   * when they may: the trainable weight tensors of two or more axes it adds are then quantized.
   */
  default @org.jspecify.annotations.Nullable String quantizationRefused() {
    return null;
  }

  /** What a site of this kind is, for messages: {@code "linear"}, {@code "embedding"} …. */
  default String siteDescription() {
    return "linear";
  }

  /**
   * Every site of the host this kind can attach to, in graph order; a declaration's selector
   * and layer filter choose among them.
   *
   * @throws SiteException when the host has no place this kind could go, with what was looked for
   */
  default List<? extends Site> candidates(Graph graph) {
    return LinearSite.find(graph);
  }

  /**
   * The selector a declaration with an empty target uses, given its options (checked and
   * defaulted); empty: every candidate site.
   */
  default String defaultTarget(AdapterSpec spec) {
    return "";
  }

  /**
   * Errors of a declaration at its sites beyond each option's own range: options that do not
   * fit together or do not fit the sites (a factor that does not divide a dimension, see {@link
   * #optionsInvalid}), or errors under the kind's own codes (its range of {@link
   * dev.graft.compiler.diag.ErrorCode}), each naming the option at fault as its attribute.
   */
  default List<Diagnostic> diagnose(AdapterSpec spec, List<? extends Site> sites, Graph graph) {
    return List.of();
  }

  /**
   * The GRAFT061 error of a declaration whose options do not fit its sites, the problems given
   * as plain sentences; none when there are none.
   */
  static List<Diagnostic> optionsInvalid(AdapterKind kind, AdapterSpec spec, List<String> problems) {
    return problems.isEmpty() ? List.of() : List.of(Diagnostic.of(dev.graft.compiler.diag.ErrorCode.ADAPTER_OPTIONS_INVALID,
        spec.source(), null, kind.displayName(), String.join("; ", problems)));
  }

  /**
   * Adds the adapter at {@code sites} to the placement's graph: its parameters (through {@link
   * Placement#parameter}) and the nodes that use them, appended in any order (the placement pass
   * sorts the graph once after every declaration is placed). Called once per {@link
   * dev.graft.compiler.GraphVariant} ({@link Placement#variant()}); must add the same parameters
   * every time (the compiler checks and fails with an internal error otherwise).
   */
  void place(AdapterSpec spec, List<? extends Site> sites, Placement placement);

  /** PEFT's {@code peft_type} of this kind ({@code "LORA"}, {@code "IA3"} …), or null where PEFT has no such kind. */
  default @Nullable String peftType(AdapterSpec spec) {
    return null;
  }

  /**
   * Adds this declaration to a PEFT {@code adapter_config.json} of {@link #peftType}, which may
   * hold other declarations of the same type already (merge, e.g. target_modules). Returns false
   * when PEFT's config cannot express the combination; the graft then saves Graft's own config.
   */
  default boolean peftConfig(AdapterSpec spec, List<? extends Site> sites, JsonObject config) {
    return false;
  }
}
