/** Reverse-mode autodiff over the IR, emitting standard ONNX ops only. */
@NullMarked
package dev.graft.compiler.autodiff;

import org.jspecify.annotations.NullMarked;
