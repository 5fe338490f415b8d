/** Adapters on frequency bands of a vision transformer's patch tokens: Earth-Adapter. */
@NullMarked
package dev.graft.compiler.kinds.frequency;

import org.jspecify.annotations.NullMarked;
