package dev.graft.processor;

import com.sun.source.tree.AnnotationTree;
import com.sun.source.tree.AssignmentTree;
import com.sun.source.tree.ClassTree;
import com.sun.source.tree.ExpressionTree;
import com.sun.source.tree.IdentifierTree;
import com.sun.source.tree.Tree;
import com.sun.source.util.TreePath;
import com.sun.source.util.Trees;
import dev.graft.compiler.diag.Diagnostic;
import dev.graft.processor.read.Annotations;
import dev.graft.processor.read.SourceRef;
import java.util.ArrayList;
import java.util.List;
import javax.annotation.processing.Messager;
import javax.annotation.processing.ProcessingEnvironment;
import javax.lang.model.element.AnnotationMirror;
import javax.lang.model.element.AnnotationValue;
import javax.lang.model.element.Element;
import javax.tools.Diagnostic.Kind;
import org.jspecify.annotations.Nullable;

/**
 * Reports a {@link Diagnostic} on the narrowest place javac knows: the annotation value named
 * by its attribute, else the annotation, else the element.
 *
 * <p>One case needs javac's tree API: a repeated annotation ({@code @Lora} written twice) is
 * held in a container javac synthesizes, which has no source position, so javac's {@link
 * Messager} would put the error on the interface. The written {@code @Lora} is then found in
 * the tree instead. Without the tree API (another compiler), the element is the place.
 */
final class Reporter {
  private final Messager messager;
  private final @Nullable Trees trees;

  Reporter(ProcessingEnvironment env) {
    this.messager = env.getMessager();
    this.trees = trees(env);
  }

  /** An informational note on the declaring element (javac prints it as {@code Note: ...}). */
  void note(String message, Element element) {
    messager.printMessage(Kind.NOTE, message, element);
  }

  /** @param fallback where to report when the diagnostic carries no {@link SourceRef} */
  void error(Diagnostic d, Element fallback) {
    if (!(d.source() instanceof SourceRef ref)) {
      messager.printMessage(Kind.ERROR, d.message(), fallback);
      return;
    }
    AnnotationMirror mirror = annotationFor(ref, d.attribute());
    if (mirror == null) {
      messager.printMessage(Kind.ERROR, d.message(), ref.element());
      return;
    }
    if (!ref.element().getAnnotationMirrors().contains(mirror) && reportInTree(d, ref.element(), mirror)) {
      return;
    }
    @Nullable AnnotationValue value = d.attribute() == null ? null : Annotations.explicitValue(mirror, d.attribute());
    if (value == null) {
      // Left to its default: the annotation itself is the narrowest place there is.
      messager.printMessage(Kind.ERROR, d.message(), ref.element(), mirror);
    } else {
      messager.printMessage(Kind.ERROR, d.message(), ref.element(), mirror, value);
    }
  }

  /** The first annotation of the reference that declares the attribute, else its first one. */
  private static @Nullable AnnotationMirror annotationFor(SourceRef ref, @Nullable String attribute) {
    if (ref.annotations().isEmpty()) {
      return null;
    }
    if (attribute != null) {
      for (AnnotationMirror m : ref.annotations()) {
        if (Annotations.hasMember(m, attribute)) {
          return m;
        }
      }
    }
    return ref.annotations().get(0);
  }

  /**
   * Reports on a repeated annotation as written: the n-th {@code @Lora} tree on the element for
   * the n-th {@code @Lora} mirror. False when the trees do not line up with the mirrors (an
   * explicitly written container, which javac's messager handles) or are unavailable.
   */
  private boolean reportInTree(Diagnostic d, Element element, AnnotationMirror mirror) {
    if (trees == null) {
      return false;
    }
    try {
      List<AnnotationMirror> repeated = repeatedOfSameType(element, mirror);
      int index = repeated.indexOf(mirror);
      TreePath path = trees.getPath(element);
      if (index < 0 || path == null || !(path.getLeaf() instanceof ClassTree cls)) {
        return false;
      }
      TreePath modifiers = new TreePath(path, cls.getModifiers());
      List<AnnotationTree> written = new ArrayList<>();
      for (AnnotationTree a : cls.getModifiers().getAnnotations()) {
        Element annotationType = trees.getElement(new TreePath(new TreePath(modifiers, a), a.getAnnotationType()));
        if (annotationType != null && annotationType.equals(mirror.getAnnotationType().asElement())) {
          written.add(a);
        }
      }
      if (written.size() != repeated.size()) {
        return false;
      }
      AnnotationTree annotation = written.get(index);
      Tree at = annotation;
      if (d.attribute() != null) {
        for (ExpressionTree arg : annotation.getArguments()) {
          if (arg instanceof AssignmentTree assign
              && assign.getVariable() instanceof IdentifierTree id
              && id.getName().contentEquals(d.attribute())) {
            at = assign.getExpression();
          }
        }
      }
      trees.printMessage(Kind.ERROR, d.message(), at, path.getCompilationUnit());
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  /** Every mirror of the mirror's type on the element, in source order, unwrapping containers. */
  private static List<AnnotationMirror> repeatedOfSameType(Element element, AnnotationMirror mirror) {
    List<AnnotationMirror> out = new ArrayList<>();
    for (AnnotationMirror m : element.getAnnotationMirrors()) {
      for (AnnotationMirror inner : Annotations.containerItems(m)) {
        if (inner.getAnnotationType().asElement().equals(mirror.getAnnotationType().asElement())) {
          out.add(inner);
        }
      }
    }
    return out;
  }

  private static @Nullable Trees trees(ProcessingEnvironment env) {
    try {
      return Trees.instance(env);
    } catch (RuntimeException | LinkageError e) {
      return null; // not javac, or a wrapped environment
    }
  }
}
