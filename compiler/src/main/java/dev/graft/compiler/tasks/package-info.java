/**
 * Tasks: what is trained on top of the host. One {@link dev.graft.compiler.tasks.TaskKind} per task
 * (classification, regression, multi-label, causal LM) holds its checks, head, loss, labels and
 * manifest record; {@link dev.graft.compiler.tasks.TaskPass} adds the declared one to a graph.
 */
@NullMarked
package dev.graft.compiler.tasks;

import org.jspecify.annotations.NullMarked;
