/** The LoRA family on linear sites: LoRA, rsLoRA, DoRA, PiSSA, DyLoRA, LoKr, LoHa, VeRA, IA³. */
@NullMarked
package dev.graft.compiler.kinds.lora;

import org.jspecify.annotations.NullMarked;
