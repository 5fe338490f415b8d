/** Tasks: heads and losses on top of the host. */
@NullMarked
package dev.graft.compiler.tasks;

import org.jspecify.annotations.NullMarked;
