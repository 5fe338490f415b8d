package dev.graft.processor.validate;

import dev.graft.compiler.diag.Diagnostic;
import dev.graft.processor.read.Annotations;
import dev.graft.processor.read.SourceRef;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.Element;
import javax.lang.model.element.ElementKind;

/**
 * The checks of a declaration's shape that only javac can make, run before it is read: that
 * {@code @Graft} sits on an interface and that the declaration has exactly one task.
 */
public final class DeclarationChecks {
  private DeclarationChecks() {}

  /** Every structural problem of the declaration on {@code element}; empty when it can be read. */
  public static List<Diagnostic> check(Element element) {
    List<Diagnostic> errors = new ArrayList<>();
    AnnotationMirror graft = Annotations.find(element, Annotations.GRAFT).orElse(null);
    SourceRef where = SourceRef.of(element, graft);
    if (element.getKind() != ElementKind.INTERFACE) {
      errors.add(ProcessorDiagnostics.notAnInterface(
          where, element.getSimpleName().toString(), article(element.getKind())));
    }
    List<AnnotationMirror> tasks = Annotations.tasks(element);
    if (tasks.isEmpty()) {
      errors.add(ProcessorDiagnostics.taskMissing(where, element.getSimpleName().toString()));
    } else if (tasks.size() > 1) {
      String names = tasks.stream()
          .map(m -> "@" + m.getAnnotationType().asElement().getSimpleName())
          .collect(java.util.stream.Collectors.joining(", "));
      errors.add(ProcessorDiagnostics.tasksConflict(
          SourceRef.of(element, tasks.get(1)), element.getSimpleName().toString(), tasks.size(), names));
    }
    return errors;
  }

  private static String article(ElementKind kind) {
    String word = switch (kind) {
      case ANNOTATION_TYPE -> "an annotation type";
      case ENUM -> "an enum";
      case RECORD -> "a record";
      case CLASS -> "a class";
      default -> "a " + kind.name().toLowerCase(Locale.ROOT);
    };
    return word;
  }
}
