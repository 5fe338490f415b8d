package dev.graft.compiler.autodiff;

import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/** Marks a test as the finite-difference check of the gradient rules of these op types. */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
@interface GradientOf {
  String[] value();
}
