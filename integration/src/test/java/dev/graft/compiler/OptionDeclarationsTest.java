package dev.graft.compiler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.kinds.AdapterOption;
import dev.graft.dsl.AdapterOptions;
import dev.graft.dsl.Graft;
import dev.graft.testing.TinyBertHost;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * A kind's {@link AdapterKind#options()} is the one declaration of its options; its annotation
 * (which Java cannot generate from the list) and the builder's {@link AdapterOptions} must agree
 * with it. Walks every registered kind: the built-ins and the op-DSL kinds this module registers
 * as services ({@code dev.graft.testing.CustomKinds}, whose annotations are not on the class path:
 * only their builder side is checked).
 */
class OptionDeclarationsTest {
  /** Annotation members every adapter annotation may have that are not options. */
  private static final Set<String> NOT_OPTIONS = Set.of("target", "layers", "name", "quantizeBits");

  private static List<AdapterKind> builtIns() {
    return AdapterKinds.all().stream().filter(k -> k.getClass().getName().startsWith("dev.graft.compiler.kinds.")).toList();
  }

  @Test
  void theWalkCoversEveryBuiltInKindAndTheServiceKinds() {
    assertEquals(22, builtIns().size(), builtIns().toString());
    assertTrue(AdapterKinds.all().size() > builtIns().size(), "no service kinds registered");
  }

  @Test
  void eachBuiltInAnnotationHasOneMemberPerOptionOfTheSameTypeAndDefault() throws ClassNotFoundException {
    List<String> problems = new ArrayList<>();
    for (AdapterKind kind : builtIns()) {
      Class<?> annotation = Class.forName(kind.annotation());
      assertTrue(annotation.isAnnotation(), kind.annotation());
      problems.addAll(disagreements(kind, annotation));
    }
    assertEquals(List.of(), problems);
  }

  /** Where {@code annotation}'s members and {@code kind}'s options disagree, one sentence each. */
  static List<String> disagreements(AdapterKind kind, Class<?> annotation) {
    List<String> problems = new ArrayList<>();
    List<String> members = new ArrayList<>();
    for (Method m : annotation.getDeclaredMethods()) {
      if (!NOT_OPTIONS.contains(m.getName())) {
        members.add(m.getName());
      }
    }
    Set<String> options = new TreeSet<>(kind.options().stream().map(AdapterOption::name).toList());
    if (!new TreeSet<>(members).equals(options)) {
      problems.add(kind.id() + ": annotation members " + new TreeSet<>(members) + " but options " + options);
    }
    for (AdapterOption o : kind.options()) {
      Method m;
      try {
        m = annotation.getDeclaredMethod(o.name());
      } catch (NoSuchMethodException e) {
        continue; // reported above
      }
      Class<?> type = m.getReturnType();
      Object annotationDefault = m.getDefaultValue();
      if (annotationDefault == null) {
        problems.add(kind.id() + "." + o.name() + ": the annotation member has no default; the kind's is "
            + o.defaultValue());
        continue;
      }
      switch (o.type()) {
        case INT -> expect(problems, kind, o, type == int.class, type);
        case DOUBLE -> expect(problems, kind, o, type == double.class, type);
        case BOOLEAN -> expect(problems, kind, o, type == boolean.class, type);
        case INTS -> expect(problems, kind, o, type == int[].class, type);
        case STRING -> {
          expect(problems, kind, o, type == String.class || type.isEnum(), type);
          if (type.isEnum()) {
            List<String> constants = Arrays.stream(type.getEnumConstants())
                .map(c -> ((Enum<?>) c).name().toLowerCase(Locale.ROOT)).toList();
            if (!constants.equals(o.choices())) {
              problems.add(kind.id() + "." + o.name() + ": enum " + type.getSimpleName() + " has " + constants
                  + " but the option takes " + o.choices());
            }
          }
        }
      }
      Object given = annotationDefault instanceof int[] a ? Arrays.stream(a).boxed().toList() : annotationDefault;
      Object value = o.coerce(given);
      if (!o.defaultValue().equals(value)) {
        problems.add(kind.id() + "." + o.name() + ": annotation default " + AdapterOption.text(value)
            + " but the kind's default " + AdapterOption.text(o.defaultValue()));
      }
    }
    return problems;
  }

  private static void expect(List<String> problems, AdapterKind kind, AdapterOption o, boolean ok, Class<?> type) {
    if (!ok) {
      problems.add(kind.id() + "." + o.name() + ": annotation member of type " + type.getSimpleName() + " for a "
          + o.type() + " option");
    }
  }

  /** The builder's options object of a declaration of {@code kind}. */
  private static AdapterOptions builderOptions(AdapterKind kind) {
    AtomicReference<AdapterOptions> options = new AtomicReference<>();
    Graft.host(TinyBertHost.host(3)).adapter(kind.id(), "", options::set);
    assertEquals(kind.id(), options.get().getKind());
    return options.get();
  }

  @Test
  void theBuilderOffersEveryOptionOfEveryKindWithItsDefault() {
    List<String> problems = new ArrayList<>();
    for (AdapterKind kind : AdapterKinds.all()) {
      boolean builtIn = builtIns().contains(kind);
      for (AdapterOption o : kind.options()) {
        AdapterOptions options = builderOptions(kind);
        if (!o.defaultValue().equals(options.get(o.name()))) {
          problems.add(kind.id() + "." + o.name() + ": get gives " + options.get(o.name()) + ", the default is "
              + o.defaultValue());
        }
        Method getter = typedGetter(o);
        Method setter = typedSetter(o);
        if (builtIn && (getter == null || setter == null)) {
          problems.add(kind.id() + "." + o.name() + ": no typed property " + property(o) + " of type " + o.type());
          continue;
        }
        if (getter == null || setter == null) {
          continue; // a service kind's own option: through set and get only
        }
        try {
          Object unset = getter.invoke(options);
          if (!o.defaultValue().equals(unset)) {
            problems.add(kind.id() + "." + o.name() + ": unset " + getter.getName() + "() gives " + unset
                + ", the kind's default is " + o.defaultValue());
          }
          setter.invoke(options, o.defaultValue());
          if (!o.defaultValue().equals(options.getValues().get(o.name()))) {
            problems.add(kind.id() + "." + o.name() + ": " + setter.getName() + " sets " + options.getValues());
          }
        } catch (ReflectiveOperationException e) {
          problems.add(kind.id() + "." + o.name() + ": " + e);
        }
      }
    }
    assertEquals(List.of(), problems);
  }

  @Test
  void everyTypedPropertyIsAnOptionOfABuiltInKind() {
    Set<String> options = new TreeSet<>();
    builtIns().forEach(k -> k.options().forEach(o -> options.add(o.name())));
    Set<String> properties = new TreeSet<>();
    for (Method m : AdapterOptions.class.getDeclaredMethods()) {
      if (Modifier.isPublic(m.getModifiers()) && m.getName().startsWith("set") && m.getParameterCount() == 1) {
        String p = m.getName().substring(3);
        properties.add(Character.toLowerCase(p.charAt(0)) + p.substring(1));
      }
    }
    // What every declaration takes, whatever its kind (quantizeBits: quantized adapters).
    properties.removeAll(Set.of("name", "layers", "quantizeBits"));
    assertEquals(options, properties);
  }

  @Test
  void readingAnOptionTheKindDoesNotHaveNamesTheKindAndItsOptions() {
    AdapterOptions lora = builderOptions(AdapterKinds.byId("lora").orElseThrow());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, lora::getReduction);
    assertEquals("LoRA has no option 'reduction'; its options are [rank, alpha, dropout, rslora, dora, init]",
        e.getMessage());
    assertEquals(8, lora.getRank());
    assertEquals(16.0, lora.getAlpha());
    assertEquals("default", lora.getInit());
    lora.set("alpha", 4);
    assertEquals(4.0, lora.getAlpha(), "an integer given for a number option reads as the number");
    lora.set("rank", "eight");
    IllegalArgumentException wrongType = assertThrows(IllegalArgumentException.class, lora::getRank);
    assertEquals("LoRA option 'rank' is int, but was set to eight (String)", wrongType.getMessage());
    AdapterOptions bottleneck = builderOptions(AdapterKinds.byId("bottleneck").orElseThrow());
    assertEquals(16, bottleneck.getReduction());
    assertEquals("pfeiffer", bottleneck.getConfig());
    assertFalse(bottleneck.getValues().containsKey("reduction"), "defaults are not given values");
    assertEquals(20, builderOptions(AdapterKinds.byId("prompt_tuning").orElseThrow()).getTokens());
  }

  private static String property(AdapterOption o) {
    return Character.toUpperCase(o.name().charAt(0)) + o.name().substring(1);
  }

  private static Type javaType(AdapterOption o) {
    return switch (o.type()) {
      case INT -> int.class;
      case DOUBLE -> double.class;
      case BOOLEAN -> boolean.class;
      case STRING -> String.class;
      case INTS -> List.class;
    };
  }

  private static Method typedGetter(AdapterOption o) {
    String name = (o.type() == AdapterOption.Type.BOOLEAN ? "is" : "get") + property(o);
    try {
      Method m = AdapterOptions.class.getMethod(name);
      return m.getReturnType() == javaType(o) && integerList(m.getGenericReturnType(), o) ? m : null;
    } catch (NoSuchMethodException e) {
      return null;
    }
  }

  private static Method typedSetter(AdapterOption o) {
    for (Method m : AdapterOptions.class.getMethods()) {
      if (m.getName().equals("set" + property(o)) && m.getParameterCount() == 1
          && m.getParameterTypes()[0] == javaType(o) && integerList(m.getGenericParameterTypes()[0], o)) {
        return m;
      }
    }
    return null;
  }

  /** For a list option, whether {@code type} is {@code List<Integer>}. */
  private static boolean integerList(Type type, AdapterOption o) {
    return o.type() != AdapterOption.Type.INTS || type instanceof ParameterizedType p
        && Arrays.equals(p.getActualTypeArguments(), new Type[] {Integer.class});
  }
}
