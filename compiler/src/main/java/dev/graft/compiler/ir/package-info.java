/** The compiler's IR: graphs of ONNX nodes, import, export and shape inference. */
@NullMarked
package dev.graft.compiler.ir;

import org.jspecify.annotations.NullMarked;
