/** The compiler's entry point and its inputs and outputs. */
@NullMarked
package dev.graft.dsl.compile;

import org.jspecify.annotations.NullMarked;
