/**
 * Read phase of the processor: annotated elements into {@link dev.graft.compiler.spec.GraftSpec}.
 * No {@code javax.lang.model} type leaves this package except inside the opaque {@link
 * dev.graft.processor.read.SourceRef}.
 */
@NullMarked
package dev.graft.processor.read;

import org.jspecify.annotations.NullMarked;
