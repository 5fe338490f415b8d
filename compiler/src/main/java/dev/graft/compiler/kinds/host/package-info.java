/** Host parameters made trainable: BitFit, LayerNorm tuning, modules to save. */
@NullMarked
package dev.graft.compiler.kinds.host;

import org.jspecify.annotations.NullMarked;
