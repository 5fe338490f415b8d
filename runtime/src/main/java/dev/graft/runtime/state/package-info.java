/** Graft runtime: parameters and their AdamW moments, the step count, initialization and checkpoints. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.state;
