package dev.graft.dsl.adapter;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** The adapter kinds the compiler knows, by id and by annotation. */
public final class AdapterKinds {
  private static final Map<String, AdapterKind> BY_ID = new LinkedHashMap<>();

  static {
    for (AdapterKind k : builtIn()) {
      register(k);
    }
  }

  private AdapterKinds() {}

  private static List<AdapterKind> builtIn() {
    List<AdapterKind> kinds = new ArrayList<>();
    kinds.add(new LoraKind());
    // LoRA family (DoRA, PiSSA, DyLoRA) ↓
    kinds.add(new DyLoraKind());
    // LoRA family ↑
    // LoKr, LoHa, VeRA, IA³ ↓
    kinds.add(new LoKrKind());
    kinds.add(new LoHaKind());
    kinds.add(new VeraKind());
    kinds.add(new Ia3Kind());
    // LoKr, LoHa, VeRA, IA³ ↑
    // Bottleneck, parallel, Hydra, host-parameter tuning ↓
    kinds.add(new BottleneckKind());
    kinds.add(new ParallelAdapterKind());
    kinds.add(new HydraKind());
    kinds.add(HostTensorKind.BIT_FIT);
    kinds.add(HostTensorKind.LAYER_NORM);
    kinds.add(new FullTuningKind());
    // Bottleneck, parallel, Hydra, host-parameter tuning ↑
    // Prompt and prefix tuning ↓
    kinds.add(new PromptTuningKind());
    kinds.add(new PrefixTuningKind());
    // Prompt and prefix tuning ↑
    // Mixtures of adapters ↓
    kinds.add(new MixtureOfLoraKind());
    kinds.add(new MultiHeadRoutingKind());
    // Mixtures of adapters ↑
    return kinds;
  }

  private static void register(AdapterKind kind) {
    if (BY_ID.putIfAbsent(kind.id(), kind) != null) {
      throw new IllegalStateException("two adapter kinds have id '" + kind.id() + "'");
    }
  }

  public static Optional<AdapterKind> byId(String id) {
    return Optional.ofNullable(BY_ID.get(id));
  }

  /** The kind declared by the annotation of that qualified name. */
  public static Optional<AdapterKind> byAnnotation(String qualifiedName) {
    return BY_ID.values().stream().filter(k -> k.annotation().equals(qualifiedName)).findFirst();
  }

  /** Every kind, in registration order. */
  public static List<AdapterKind> all() {
    return Collections.unmodifiableList(new ArrayList<>(BY_ID.values()));
  }
}
