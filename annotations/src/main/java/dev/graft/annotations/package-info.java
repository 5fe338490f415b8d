/**
 * The annotations a Graft declaration is written with. This artifact has no dependencies: annotation
 * members cannot be null, so there is no nullness to mark.
 */
package dev.graft.annotations;
