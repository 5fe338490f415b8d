package dev.graft.compiler.kinds;

import dev.graft.compiler.kinds.bottleneck.BottleneckKind;
import dev.graft.compiler.kinds.bottleneck.HydraKind;
import dev.graft.compiler.kinds.bottleneck.MosaKind;
import dev.graft.compiler.kinds.bottleneck.ParallelAdapterKind;
import dev.graft.compiler.kinds.frequency.EarthAdapterKind;
import dev.graft.compiler.kinds.host.FullTuningKind;
import dev.graft.compiler.kinds.host.HostTensorKind;
import dev.graft.compiler.kinds.host.SparseFineTuningKind;
import dev.graft.compiler.kinds.lora.DyLoraKind;
import dev.graft.compiler.kinds.lora.Ia3Kind;
import dev.graft.compiler.kinds.lora.LoHaKind;
import dev.graft.compiler.kinds.lora.LoKrKind;
import dev.graft.compiler.kinds.lora.SketchTuneKind;
import dev.graft.compiler.kinds.lora.SokaKind;
import dev.graft.compiler.kinds.lora.LoraKind;
import dev.graft.compiler.kinds.lora.VeraKind;
import dev.graft.compiler.kinds.mixture.MixtureOfLoraKind;
import dev.graft.compiler.kinds.mixture.MultiHeadRoutingKind;
import dev.graft.compiler.kinds.mixture.SemaKind;
import dev.graft.compiler.kinds.tokens.PrefixTuningKind;
import dev.graft.compiler.kinds.tokens.PromptTuningKind;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Iterator;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import org.jspecify.annotations.Nullable;

/**
 * The adapter kinds the compiler knows, by id and by annotation: the built-in ones, then those
 * the class loader that loaded Graft provides as {@link java.util.ServiceLoader} services of
 * {@link AdapterKind} (user-defined kinds in jars on the processor path, or on the class path of
 * a program using the builder).
 */
public final class AdapterKinds {
  private static final Map<String, AdapterKind> BY_ID = new LinkedHashMap<>();
  /** Why the service kinds could not be registered, if they could not; every lookup throws it then. */
  private static final @Nullable AdapterKindLoadException LOAD_FAILURE;

  static {
    for (AdapterKind k : builtIn()) {
      register(k);
    }
    AdapterKindLoadException failure = null;
    try {
      discover(AdapterKinds.class.getClassLoader()).stream().filter(k -> !BY_ID.containsKey(k.id()))
          .forEach(AdapterKinds::register);
    } catch (AdapterKindLoadException e) {
      failure = e;
    }
    LOAD_FAILURE = failure;
  }

  private AdapterKinds() {}

  private static List<AdapterKind> builtIn() {
    List<AdapterKind> kinds = new ArrayList<>();
    kinds.add(new LoraKind());
    kinds.add(new DyLoraKind());
    kinds.add(new LoKrKind());
    kinds.add(new LoHaKind());
    kinds.add(new VeraKind());
    kinds.add(new Ia3Kind());
    kinds.add(new BottleneckKind());
    kinds.add(new ParallelAdapterKind());
    kinds.add(new HydraKind());
    kinds.add(HostTensorKind.BIT_FIT);
    kinds.add(HostTensorKind.LAYER_NORM);
    kinds.add(new FullTuningKind());
    kinds.add(new PromptTuningKind());
    kinds.add(new PrefixTuningKind());
    kinds.add(new MixtureOfLoraKind());
    kinds.add(new MultiHeadRoutingKind());
    kinds.add(new EarthAdapterKind());
    kinds.add(new MosaKind());
    kinds.add(new SparseFineTuningKind());
    kinds.add(new SemaKind());
    kinds.add(new SokaKind());
    kinds.add(new SketchTuneKind());
    return kinds;
  }

  private static void register(AdapterKind kind) {
    if (BY_ID.putIfAbsent(kind.id(), kind) != null) {
      throw new IllegalStateException("two adapter kinds have id '" + kind.id() + "'");
    }
  }

  public static Optional<AdapterKind> byId(String id) {
    checkLoaded();
    return Optional.ofNullable(BY_ID.get(id));
  }

  /** The kind declared by the annotation of that qualified name. */
  public static Optional<AdapterKind> byAnnotation(String qualifiedName) {
    checkLoaded();
    return BY_ID.values().stream().filter(k -> k.annotation().equals(qualifiedName)).findFirst();
  }

  /** Every kind, in registration order. */
  public static List<AdapterKind> all() {
    checkLoaded();
    return Collections.unmodifiableList(new ArrayList<>(BY_ID.values()));
  }

  private static void checkLoaded() {
    if (LOAD_FAILURE != null) {
      throw new AdapterKindLoadException(LOAD_FAILURE);
    }
  }

  /**
   * The built-in kinds followed by the {@link AdapterKind} services {@code loader} provides, in
   * the order it finds them. A service class listed twice counts once.
   *
   * @throws AdapterKindLoadException (GRAFT094) when a service cannot be instantiated, or its id
   *     or annotation is that of another kind (naming both classes)
   */
  public static List<AdapterKind> discover(ClassLoader loader) {
    Map<String, AdapterKind> byId = new LinkedHashMap<>();
    builtIn().forEach(k -> byId.put(k.id(), k));
    Iterator<AdapterKind> services = ServiceLoader.load(AdapterKind.class, loader).iterator();
    while (true) {
      AdapterKind kind;
      try {
        if (!services.hasNext()) {
          break;
        }
        kind = services.next();
      } catch (ServiceConfigurationError e) {
        throw new AdapterKindLoadException("?", "a service listed in META-INF/services/" + AdapterKind.class.getName(),
            "it cannot be loaded: " + e.getMessage(), e);
      }
      String className = kind.getClass().getName();
      if (kind.id().isBlank() || kind.annotation().isBlank()) {
        throw new AdapterKindLoadException(kind.id(), className, "its id and annotation must not be blank, got id '"
            + kind.id() + "' and annotation '" + kind.annotation() + "'");
      }
      AdapterKind sameId = byId.get(kind.id());
      if (sameId != null && sameId.getClass().getName().equals(className)) {
        continue;
      }
      if (sameId != null) {
        throw new AdapterKindLoadException(kind.id(), className, "adapter kind " + sameId.getClass().getName()
            + " has the same id; give one of them another id, or take one jar off the class path");
      }
      for (AdapterKind other : byId.values()) {
        if (other.annotation().equals(kind.annotation())) {
          throw new AdapterKindLoadException(kind.id(), className, "adapter kind '" + other.id() + "' ("
              + other.getClass().getName() + ") is declared by the same annotation " + kind.annotation());
        }
      }
      byId.put(kind.id(), kind);
    }
    return List.copyOf(byId.values());
  }
}
