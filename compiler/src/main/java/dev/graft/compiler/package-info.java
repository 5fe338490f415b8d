/** The compiler's entry point ({@link dev.graft.compiler.GraftCompiler}, the pipeline it runs) and its inputs and outputs. */
@NullMarked
package dev.graft.compiler;

import org.jspecify.annotations.NullMarked;
