/** Write phase: ONNX resources and the typed Java class of each compiled graft. */
@NullMarked
package dev.graft.processor.write;

import org.jspecify.annotations.NullMarked;
