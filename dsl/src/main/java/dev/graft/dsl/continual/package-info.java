/**
 * Continual learning with grafts that grow: SEMA ({@link dev.graft.dsl.continual.Sema}) recompiles
 * its graft with more adapters where a new task's data is new to every representation descriptor.
 */
@NullMarked
package dev.graft.dsl.continual;

import org.jspecify.annotations.NullMarked;
