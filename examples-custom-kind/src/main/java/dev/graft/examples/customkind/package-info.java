/**
 * A user-defined adapter kind, gated LoRA, as a team would ship it: the kind written with the op
 * DSL ({@link dev.graft.examples.customkind.GatedLoraKind}), registered with AutoService, and the
 * annotation that declares it ({@link dev.graft.examples.customkind.GatedLora}). Put the jar on
 * the processor path and the compile class path of the module that declares grafts.
 */
@NullMarked
package dev.graft.examples.customkind;

import org.jspecify.annotations.NullMarked;
