/** Compile-time errors with stable codes. */
@NullMarked
package dev.graft.compiler.diag;

import org.jspecify.annotations.NullMarked;
