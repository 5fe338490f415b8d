/** Compile-time errors with stable codes. */
@NullMarked
package dev.graft.dsl.diag;

import org.jspecify.annotations.NullMarked;
