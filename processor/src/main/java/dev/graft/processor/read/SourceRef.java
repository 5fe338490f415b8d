package dev.graft.processor.read;

import java.util.List;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.Element;
import org.jspecify.annotations.Nullable;

/**
 * Where a part of a declaration was written: the annotated element and the annotations that
 * spell the part, most specific first. Travels through the spec as its opaque {@code source}
 * so that a {@link dev.graft.compiler.diag.Diagnostic} can be reported on the annotation value at
 * fault.
 */
public record SourceRef(Element element, List<AnnotationMirror> annotations) {
  public SourceRef {
    annotations = List.copyOf(annotations);
  }

  public static SourceRef of(Element element, @Nullable AnnotationMirror... annotations) {
    java.util.ArrayList<AnnotationMirror> present = new java.util.ArrayList<>();
    for (AnnotationMirror a : annotations) {
      if (a != null) {
        present.add(a);
      }
    }
    return new SourceRef(element, present);
  }
}
