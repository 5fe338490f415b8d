package dev.graft.processor.read;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.compiler.diag.ErrorCode;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.Composition;
import dev.graft.compiler.spec.CompositionParser;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.compiler.spec.Int8Backward;
import dev.graft.compiler.spec.TaskSpec;
import dev.graft.compiler.tasks.TaskKind;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.AnnotationValue;
import javax.lang.model.element.TypeElement;
import javax.lang.model.element.VariableElement;
import javax.lang.model.util.Elements;
import org.jspecify.annotations.Nullable;

/**
 * Read phase: turns an annotated interface into a {@link GraftSpec}, parsing each {@code @Compose}
 * text into its typed block (the one place the syntax is parsed). Every spec part carries a
 * {@link SourceRef} to the annotation it came from. Assumes the structural checks of {@link
 * dev.graft.processor.validate.DeclarationChecks} passed; returns empty when an annotation value
 * is missing or malformed, which javac has already reported.
 */
public final class DeclarationReader {
  /** The member of {@code @Compose} that holds the composition's text. */
  private static final String COMPOSE_VALUE = "value";

  private final Elements elements;

  public DeclarationReader(Elements elements) {
    this.elements = elements;
  }

  /**
   * The name a declaration compiles to: the interface's simple name, with enclosing type names
   * joined by {@code _} for nested interfaces (so two nested {@code Lora}s do not collide).
   */
  public static String graftName(TypeElement type) {
    StringBuilder name = new StringBuilder(type.getSimpleName());
    for (var e = type.getEnclosingElement(); e instanceof TypeElement outer; e = outer.getEnclosingElement()) {
      name.insert(0, outer.getSimpleName() + "_");
    }
    return name.toString();
  }

  /**
   * A declaration as read: its spec, and the errors of the values read here (GRAFT080: an
   * {@code @Compose} text that does not parse, each on its value), whose parts the spec leaves out.
   */
  public record Read(GraftSpec spec, List<Diagnostic> errors) {
    public Read {
      errors = List.copyOf(errors);
    }
  }

  public Optional<Read> read(TypeElement type) {
    try {
      List<Diagnostic> errors = new ArrayList<>();
      GraftSpec spec = readOrThrow(type, errors);
      return Optional.of(new Read(spec, errors));
    } catch (MalformedException e) {
      return Optional.empty();
    }
  }

  private GraftSpec readOrThrow(TypeElement type, List<Diagnostic> errors) throws MalformedException {
    AnnotationMirror graft = Annotations.find(type, Annotations.GRAFT).orElseThrow(MalformedException::new);
    @Nullable AnnotationMirror adamW = Annotations.find(type, Annotations.ADAMW).orElse(null);
    List<AnnotationMirror> tasks = Annotations.tasks(type);
    if (tasks.size() != 1) {
      throw new MalformedException();
    }
    List<AdapterSpec> adapters = new ArrayList<>();
    for (AnnotationMirror m : Annotations.adapters(type)) {
      adapters.add(adapter(type, m));
    }
    AdamWSpec optimizer = adamW == null
        ? AdamWSpec.DEFAULT
        : new AdamWSpec(
            number(adamW, "beta1"), number(adamW, "beta2"), number(adamW, "epsilon"), number(adamW, "weightDecay"));
    List<Composition> compositions = new ArrayList<>();
    for (AnnotationMirror m : Annotations.compositions(type)) {
      String text = string(m, COMPOSE_VALUE);
      SourceRef source = SourceRef.of(type, m);
      try {
        compositions.add(new Composition(CompositionParser.parse(text), source));
      } catch (CompositionParser.SyntaxError e) {
        errors.add(Diagnostic.of(ErrorCode.COMPOSITION_SYNTAX, source, COMPOSE_VALUE, text, e.column(), e.expected(),
            e.found()));
      }
    }
    List<String> train = new ArrayList<>();
    for (AnnotationValue item : list(graft, "train")) {
      if (!(item.getValue() instanceof String s)) {
        throw new MalformedException();
      }
      train.add(s);
    }
    return new GraftSpec(
        graftName(type),
        string(graft, "host"),
        adapters,
        task(type, tasks.get(0)),
        optimizer,
        // The declaration as a whole: @Graft first (host, whole-graph errors), then @AdamW, whose
        // members the optimizer checks name.
        SourceRef.of(type, graft, adamW),
        compositions,
        train,
        int8Backward(graft));
  }

  /** {@code @Graft(int8Backward)}, its default where not written. */
  private Int8Backward int8Backward(AnnotationMirror graft) throws MalformedException {
    if (value(graft, "int8Backward") instanceof VariableElement constant) {
      return Int8Backward.valueOf(constant.getSimpleName().toString());
    }
    throw new MalformedException();
  }

  /**
   * An adapter annotation as a declaration of its kind: {@code target} and {@code layers}, and
   * every other member written as an option of the same name; enum constants become their
   * lower-case names. A member left to its default is left out where the kind has that option, so
   * the kind's list is the one source of defaults; a defaulted member the kind does not have is
   * kept, so the compiler reports it (GRAFT019) on the annotation.
   */
  private AdapterSpec adapter(TypeElement type, AnnotationMirror m) throws MalformedException {
    AdapterKind kind = AdapterKinds.byAnnotation(Annotations.nameOf(m)).orElseThrow(MalformedException::new);
    List<Integer> layers = new ArrayList<>();
    Map<String, Object> options = new LinkedHashMap<>();
    for (var e : elements.getElementValuesWithDefaults(m).entrySet()) {
      String member = e.getKey().getSimpleName().toString();
      Object v = e.getValue().getValue();
      if (member.equals("target") || member.equals("name")) {
        continue;
      }
      if (!m.getElementValues().containsKey(e.getKey())
          && kind.options().stream().anyMatch(o -> o.name().equals(member))) {
        continue;
      }
      if (member.equals("layers")) {
        for (AnnotationValue item : list(m, "layers")) {
          if (!(item.getValue() instanceof Integer i)) {
            throw new MalformedException();
          }
          layers.add(i);
        }
      } else if (v instanceof List<?>) {
        List<Integer> items = new ArrayList<>();
        for (AnnotationValue item : list(m, member)) {
          if (!(item.getValue() instanceof Integer i)) {
            throw new MalformedException();
          }
          items.add(i);
        }
        options.put(member, items);
      } else if (v instanceof VariableElement constant) {
        options.put(member, constant.getSimpleName().toString().toLowerCase(Locale.ROOT));
      } else if (v instanceof Number || v instanceof Boolean || v instanceof String) {
        options.put(member, v instanceof Float f ? (Object) f.doubleValue() : v);
      } else {
        throw new MalformedException();
      }
    }
    String target = Annotations.hasMember(m, "target") ? string(m, "target") : "";
    String name = Annotations.hasMember(m, "name") ? string(m, "name") : "";
    return new AdapterSpec(kind.id(), target, layers, options, SourceRef.of(type, m), name);
  }

  /** A task annotation as the declaration of its {@link TaskKind}. */
  private TaskSpec task(TypeElement type, AnnotationMirror m) throws MalformedException {
    TaskKind kind = TaskKind.byAnnotation(Annotations.nameOf(m)).orElseThrow(MalformedException::new);
    try {
      return kind.declared(new TaskKind.Members() {
        @Override
        public double number(String member) {
          return orIllegal(() -> DeclarationReader.this.number(m, member));
        }

        @Override
        public String string(String member) {
          return orIllegal(() -> DeclarationReader.this.string(m, member));
        }

        @Override
        public String constant(String member) {
          return orIllegal(() -> {
            if (value(m, member) instanceof VariableElement constant) {
              return constant.getSimpleName().toString();
            }
            throw new MalformedException();
          });
        }
      }, SourceRef.of(type, m));
    } catch (IllegalArgumentException e) {
      throw new MalformedException();
    }
  }

  /** A member read for a {@link TaskKind}: a malformed one as its {@link IllegalArgumentException}. */
  private static <T> T orIllegal(MemberRead<T> read) {
    try {
      return read.get();
    } catch (MalformedException e) {
      throw new IllegalArgumentException("malformed annotation member", e);
    }
  }

  @FunctionalInterface
  private interface MemberRead<T> {
    T get() throws MalformedException;
  }

  private Object value(AnnotationMirror m, String member) throws MalformedException {
    AnnotationValue v = Annotations.value(elements, m, member);
    if (v == null || v.getValue() == null) {
      throw new MalformedException();
    }
    return v.getValue();
  }

  private String string(AnnotationMirror m, String member) throws MalformedException {
    if (value(m, member) instanceof String s) {
      return s;
    }
    throw new MalformedException();
  }

  private double number(AnnotationMirror m, String member) throws MalformedException {
    if (value(m, member) instanceof Number n) {
      return n.doubleValue();
    }
    throw new MalformedException();
  }

  private boolean bool(AnnotationMirror m, String member) throws MalformedException {
    if (value(m, member) instanceof Boolean b) {
      return b;
    }
    throw new MalformedException();
  }

  private List<? extends AnnotationValue> list(AnnotationMirror m, String member) throws MalformedException {
    Object v = value(m, member);
    if (v instanceof List<?> items) {
      List<AnnotationValue> out = new ArrayList<>();
      for (Object item : items) {
        if (!(item instanceof AnnotationValue av)) {
          throw new MalformedException();
        }
        out.add(av);
      }
      return out;
    }
    throw new MalformedException();
  }

  /** An annotation value javac could not attribute; javac has reported it already. */
  private static final class MalformedException extends Exception {
    private static final long serialVersionUID = 1L;

    MalformedException() {
      super(null, null, false, false);
    }
  }
}
