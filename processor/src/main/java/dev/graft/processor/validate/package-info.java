/** Validation the processor adds to the compiler's: checks that need javac, and host lookup. */
@NullMarked
package dev.graft.processor.validate;

import org.jspecify.annotations.NullMarked;
