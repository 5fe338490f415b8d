/** Bottleneck adapters: sequential (Pfeiffer, Houlsby), parallel, Hydra. */
@NullMarked
package dev.graft.compiler.kinds.bottleneck;

import org.jspecify.annotations.NullMarked;
