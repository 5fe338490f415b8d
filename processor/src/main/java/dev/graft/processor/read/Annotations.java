package dev.graft.processor.read;

import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.tasks.TaskKind;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.AnnotationValue;
import javax.lang.model.element.Element;
import javax.lang.model.element.ExecutableElement;
import javax.lang.model.element.TypeElement;
import javax.lang.model.util.Elements;
import org.jspecify.annotations.Nullable;

/** Finding annotation mirrors on an element and reading their values. */
public final class Annotations {
  public static final String GRAFT = "dev.graft.annotations.Graft";
  public static final String ADAMW = "dev.graft.annotations.AdamW";
  /** The task annotations, one per {@link TaskKind}; a declaration has exactly one. */
  public static final List<String> TASKS = TaskKind.all().stream().map(TaskKind::annotation).toList();
  public static final String COMPOSE = "dev.graft.annotations.Compose";

  /** The {@code @Compose} annotations on the element, in the order written (inside their container or not). */
  public static List<AnnotationMirror> compositions(Element element) {
    List<AnnotationMirror> out = new ArrayList<>();
    for (AnnotationMirror m : element.getAnnotationMirrors()) {
      if (nameOf(m).equals(COMPOSE)) {
        out.add(m);
      } else if (nameOf(m).equals(COMPOSE + ".List")) {
        out.addAll(containerItems(m));
      }
    }
    return out;
  }

  private Annotations() {}

  /** The task annotations on the element, in {@link #TASKS} order. */
  public static List<AnnotationMirror> tasks(Element element) {
    List<AnnotationMirror> out = new ArrayList<>();
    for (String t : TASKS) {
      find(element, t).ifPresent(out::add);
    }
    return out;
  }

  /**
   * The adapter annotations on the element (those of a kind {@link AdapterKinds} knows), in the
   * order written, each repeated one where it stands (inside its {@code List} container or not).
   */
  public static List<AnnotationMirror> adapters(Element element) {
    List<AnnotationMirror> out = new ArrayList<>();
    for (AnnotationMirror m : element.getAnnotationMirrors()) {
      String name = nameOf(m);
      if (AdapterKinds.byAnnotation(name).isPresent()) {
        out.add(m);
      } else if (name.endsWith(".List")
          && AdapterKinds.byAnnotation(name.substring(0, name.length() - ".List".length())).isPresent()) {
        out.addAll(containerItems(m));
      }
    }
    return out;
  }

  /** The mirror of the annotation type named {@code qualifiedName} directly on the element. */
  public static Optional<AnnotationMirror> find(Element element, String qualifiedName) {
    for (AnnotationMirror m : element.getAnnotationMirrors()) {
      if (nameOf(m).equals(qualifiedName)) {
        return Optional.of(m);
      }
    }
    return Optional.empty();
  }

  /** The annotations a repeatable annotation's container holds (its {@code value}), in order. */
  public static List<AnnotationMirror> containerItems(AnnotationMirror container) {
    List<AnnotationMirror> out = new ArrayList<>();
    AnnotationValue v = explicitValue(container, "value");
    if (v != null && v.getValue() instanceof List<?> items) {
      for (Object item : items) {
        if (item instanceof AnnotationValue av && av.getValue() instanceof AnnotationMirror inner) {
          out.add(inner);
        }
      }
    }
    return out;
  }

  public static String nameOf(AnnotationMirror m) {
    return ((TypeElement) m.getAnnotationType().asElement()).getQualifiedName().toString();
  }

  /** The value written for {@code member}, or null when the member was left to its default. */
  public static @Nullable AnnotationValue explicitValue(AnnotationMirror m, String member) {
    return valueIn(m.getElementValues(), member);
  }

  /** The value of {@code member}, written or defaulted; null when absent (javac reports that). */
  public static @Nullable AnnotationValue value(Elements elements, AnnotationMirror m, String member) {
    return valueIn(elements.getElementValuesWithDefaults(m), member);
  }

  /** Whether the annotation type declares a member of that name. */
  public static boolean hasMember(AnnotationMirror m, String member) {
    for (Element e : m.getAnnotationType().asElement().getEnclosedElements()) {
      if (e instanceof ExecutableElement && e.getSimpleName().contentEquals(member)) {
        return true;
      }
    }
    return false;
  }

  private static @Nullable AnnotationValue valueIn(
      Map<? extends ExecutableElement, ? extends AnnotationValue> values, String member) {
    for (Map.Entry<? extends ExecutableElement, ? extends AnnotationValue> e : values.entrySet()) {
      if (e.getKey().getSimpleName().contentEquals(member)) {
        return e.getValue();
      }
    }
    return null;
  }
}
