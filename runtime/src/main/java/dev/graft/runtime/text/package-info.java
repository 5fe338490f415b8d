/** Graft runtime: tokenization with Hugging Face tokenizers (DJL). */
@org.jspecify.annotations.NullMarked
package dev.graft.runtime.text;
