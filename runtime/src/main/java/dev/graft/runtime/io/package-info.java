/** Graft runtime: file formats (safetensors, Hugging Face PEFT) and atomic writes. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.io;
