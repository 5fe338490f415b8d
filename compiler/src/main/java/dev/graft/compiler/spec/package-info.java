/** The immutable model of a Graft declaration, shared by the annotations and the builder. */
@NullMarked
package dev.graft.compiler.spec;

import org.jspecify.annotations.NullMarked;
