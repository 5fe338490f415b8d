/** Mixtures of adapters: mixture of LoRA experts, multi-head routing. */
@NullMarked
package dev.graft.compiler.kinds.mixture;

import org.jspecify.annotations.NullMarked;
