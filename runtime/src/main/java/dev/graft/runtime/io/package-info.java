/** Graft runtime: file formats (safetensors, Hugging Face PEFT, exports at a lower rank) and atomic writes. */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.io;
