/** The Graft annotation processor: {@link dev.graft.processor.GraftProcessor}. */
@NullMarked
package dev.graft.processor;

import org.jspecify.annotations.NullMarked;
