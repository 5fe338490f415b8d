/** The serve command: a graft's adapters over HTTP, mixed per row in one batch. */
@org.jspecify.annotations.NullMarked
package dev.graft.tools.serve;
