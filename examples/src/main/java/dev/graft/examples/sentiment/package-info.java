/** The main example: LoRA sentiment classification on all-MiniLM-L6-v2. */
@NullMarked
package dev.graft.examples.sentiment;

import org.jspecify.annotations.NullMarked;
